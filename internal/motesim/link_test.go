package motesim

import (
	"log/slog"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestRefusedSubscriptionIsLogged: a broker that lets the simulator publish
// but not read its command topics refuses the subscriptions in the SUBACK;
// a mote and a device each say so at warn, and still announce themselves.
func TestRefusedSubscriptionIsLogged(t *testing.T) {
	t.Parallel()
	addr := startBrokerWithUsers(t, `
[users.sim]
password = "`+hubtest.PasswordHash(t, "sim-secret")+`"
write = ["nodes/#", "homie/#"]
[users.watcher]
password = "`+hubtest.PasswordHash(t, "watcher-secret")+`"
read = ["#"]
`)
	watcher, err := hubtest.ConnectMQTTAs(addr, "watcher", "watcher", "watcher-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Disconnect(0)
	boots := hubtest.SubscribeMQTT(t, watcher, "nodes/+/boot", 1)
	states := hubtest.SubscribeMQTT(t, watcher, homieState, 1)

	log, logs := newLogs(t)
	cfg := devicesConfig(addr, fast, log, DeviceHomie)
	cfg.Username, cfg.Password = "sim", "sim-secret"
	m := startMotes(t, cfg)
	hubtest.Receive(t, boots, hubtest.Timeout, "mote-1's boot")
	receiveUntil(t, states, hubtest.Timeout, "homie's ready", func(m hubtest.Message) bool { return m.Payload == "ready" })
	m.stop(t)

	const refused = "broker refused subscription: commands will not arrive"
	if n := logs.count(slog.LevelWarn, refused, "mote", "mote-1"); n != 2 {
		t.Errorf("mote-1 logged %d refused subscriptions, want 2 (relays and LED)", n)
	}
	if n := logs.count(slog.LevelWarn, refused, "device", DeviceHomie); n != 1 {
		t.Errorf("homie logged %d refused subscriptions, want 1", n)
	}
}

// TestCopyingStoreHandsOutCopies: what paho's resume marks Dup on is a
// copy of its own, not the packet that was put in the store (which the
// connection's writer may be writing) nor the one the store keeps.
func TestCopyingStoreHandsOutCopies(t *testing.T) {
	s := newCopyingStore()
	s.Open()
	defer s.Close()
	put := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	put.Qos, put.MessageID, put.TopicName, put.Payload = 1, 7, "nodes/mote-1/asn", []byte("1")
	s.Put("o.7", put)
	got := s.Get("o.7").(*packets.PublishPacket)
	if got == put || got.TopicName != put.TopicName || got.MessageID != 7 || string(got.Payload) != "1" {
		t.Fatalf("Get gave %+v (the packet put: %v); want a copy of it", got, got == put)
	}
	got.Dup = true
	if put.Dup || s.Get("o.7").(*packets.PublishPacket).Dup {
		t.Fatal("marking what Get gave marked the packet put or the one kept")
	}
	sub := packets.NewControlPacket(packets.Subscribe)
	s.Put("o.8", sub)
	if s.Get("o.8") != sub {
		t.Fatal("a packet other than a PUBLISH was copied")
	}
}
