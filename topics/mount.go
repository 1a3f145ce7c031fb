package topics

import "strings"

// A base is the MQTT subtree a client is mounted on: with base "nodes/bridge/0"
// the client's "relay/i2c0-3b/set" is the MQTT topic
// "nodes/bridge/0/relay/i2c0-3b/set". The empty base is the root.

// ValidateBase reports whether base can be a mount prefix: either "" (the root)
// or a valid topic name whose levels are all non-empty and none is "." or "..",
// so that a base taken from a URL path cannot be made to mean another subtree.
func ValidateBase(base string) error {
	if base == "" {
		return nil
	}
	if err := ValidateTopic(base); err != nil {
		return err
	}
	for level := range strings.SplitSeq(base, "/") {
		if level == "" || level == "." || level == ".." {
			return ErrBadBase
		}
	}
	return nil
}

// Mount returns the absolute topic or filter for rel under base.
func Mount(base, rel string) string {
	if base == "" {
		return rel
	}
	return base + "/" + rel
}

// Unmount returns topic relative to base, and false when topic is not strictly
// below base (the base topic itself has no relative name).
func Unmount(base, topic string) (string, bool) {
	if base == "" {
		return topic, true
	}
	if len(topic) <= len(base)+1 || topic[len(base)] != '/' || !strings.HasPrefix(topic, base) {
		return "", false
	}
	return topic[len(base)+1:], true
}
