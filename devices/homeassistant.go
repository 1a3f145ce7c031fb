package devices

// homeAssistant is Home Assistant MQTT discovery.
type homeAssistant struct{}

func (homeAssistant) handle(m *Model, msg Message) (Changes, bool) { return Changes{}, false }
