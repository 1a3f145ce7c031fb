package broker

import "testing"

// TestSubjectTopicMapping: the pairs nats-server's MQTT gateway makes
// (server/mqtt.go, mqttToNATSSubjectConversion and natsSubjectToMQTTTopic),
// both ways: '.' in a topic, empty levels at the start, the end and the
// middle.
func TestSubjectTopicMapping(t *testing.T) {
	for _, c := range []struct{ topic, subject string }{
		{"a", "a"},
		{"a/b", "a.b"},
		{"nodes/relay/1/set", "nodes.relay.1.set"},
		{"a.b", "a//b"},
		{"v1.2/x", "v1//2.x"},
		{"/a", "/.a"},
		{"a/", "a./"},
		{"a//b", "a./.b"},
		{"a///b", "a././.b"},
		{"//", "/././"},
		{"/", "/./"},
		{"a/.b/", "a.//b./"},
	} {
		if got := topicToSubject(c.topic); got != c.subject {
			t.Errorf("topicToSubject(%q) = %q, want %q", c.topic, got, c.subject)
		}
		if got := subjectToTopic(c.subject); got != c.topic {
			t.Errorf("subjectToTopic(%q) = %q, want %q", c.subject, got, c.topic)
		}
	}
}
