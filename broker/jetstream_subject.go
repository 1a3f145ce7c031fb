package broker

import "strings"

// The MQTT topic of a NATS subject, and back, as the MQTT gateway of
// nats-server maps them (server/mqtt.go: natsSubjectToMQTTTopic and
// mqttToNATSSubjectConversion): a level separator '/' is '.', a '.' in a
// topic is "//", and an empty level is kept with a '/' next to the '.' of
// its side ("/a" is "/.a", "a/" is "a./", "a//b" is "a./.b").

// subjectToTopic is the MQTT topic of a NATS subject (natsSubjectToMQTTTopic).
func subjectToTopic(subject string) string {
	var b strings.Builder
	b.Grow(len(subject))
	for i := 0; i < len(subject); i++ {
		switch c := subject[i]; c {
		case '/':
			if i+1 < len(subject) {
				switch subject[i+1] {
				case '.':
					b.WriteByte('/')
					i++
				case '/':
					b.WriteByte('.')
					i++
				}
			}
			// a '/' alone marks an empty level next to a '.': nothing of its own
		case '.':
			b.WriteByte('/')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// topicToSubject is the NATS subject an MQTT topic is published on
// (mqttToNATSSubjectConversion without wildcards): the inverse of
// subjectToTopic.
func topicToSubject(topic string) string {
	var b strings.Builder
	b.Grow(len(topic) + 4)
	last := byte(0) // the last byte written
	put := func(s string) {
		b.WriteString(s)
		last = s[len(s)-1]
	}
	for i := 0; i < len(topic); i++ {
		switch c := topic[i]; c {
		case '/':
			switch {
			case i == 0 || last == '.':
				put("/.")
			case i == len(topic)-1 || topic[i+1] == '/':
				put("./")
			default:
				put(".")
			}
		case '.':
			put("//")
		default:
			put(string(c))
		}
	}
	if last == '.' {
		b.WriteByte('/')
	}
	return b.String()
}
