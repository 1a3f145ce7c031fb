// Package topics holds the MQTT topic rules that every other package of motehub
// relies on: validating topic names and filters, matching a filter against a
// topic, an index that finds every subscriber of a topic without scanning them
// all, and mounting a relative topic under a base prefix.
//
// It follows MQTT 3.1.1 §4.7 and MQTT 5.0 §4.7: levels are separated by '/',
// empty levels are legal, '+' matches exactly one level, '#' matches the rest
// (including the parent level: "a/#" matches "a"), and a filter that starts with
// a wildcard does not match a topic that starts with '$'.
//
// Concurrency: the functions are pure and safe for concurrent use. An [Index]
// is not synchronised; its owner guards it (bridge.Hub holds it under its lock).
//
// This package imports only the standard library.
package topics
