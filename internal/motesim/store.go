package motesim

import (
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// copyingStore is paho's MemoryStore keeping and handing out copies of the
// PUBLISH packets put in it. After a reconnect, paho's resume sets Dup on
// each QoS 1 PUBLISH it gets from the store and sends it again, while the
// packet that was put there may still be on its way through the
// connection's writer: a data race on the packet (paho.mqtt.golang#703,
// open), which the race detector reports in the tests where motes
// reconnect. With copies, resume marks its own.
type copyingStore struct{ *paho.MemoryStore }

func newCopyingStore() copyingStore { return copyingStore{paho.NewMemoryStore()} }

func (s copyingStore) Put(key string, m packets.ControlPacket) {
	s.MemoryStore.Put(key, copyPublish(m))
}

func (s copyingStore) Get(key string) packets.ControlPacket {
	return copyPublish(s.MemoryStore.Get(key))
}

// copyPublish is a copy of m when it is a PUBLISH (its payload shared: no
// one writes to it), else m.
func copyPublish(m packets.ControlPacket) packets.ControlPacket {
	if p, ok := m.(*packets.PublishPacket); ok {
		c := *p
		return &c
	}
	return m
}
