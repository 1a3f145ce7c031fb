package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// The MQTT 5 link under load and abuse, on Mosquitto.

// TestRemote5BurstInOrder: 10,000 messages on one topic, published as fast
// as a device can, arrive through the v5 link in order, each once.
func TestRemote5BurstInOrder(t *testing.T) {
	const n = 10_000
	m := hubtest.StartMosquitto(t, "max_queued_messages 20000") // Mosquitto's 1000 would drop some: not the link's doing
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + m.Addr()}}, true)
	got, _ := busSubscribe(t, r, "burst/#")
	device := hubtest.ConnectMQTT(t, m.Addr(), "burster")
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = device.Publish("burst/t", 1, false, strconv.Itoa(i)) // paho writes them in this order
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
			t.Fatalf("device: publish %d: %v", i, tok.Error())
		}
	}
	hubtest.Eventually(t, 3*hubtest.Timeout, func() bool { return got.count() >= n }, "%d of %d messages arrived", got.count(), n)
	msgs := got.all()
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d: some came twice", len(msgs), n)
	}
	for i, msg := range msgs {
		if string(msg.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: out of order or repeated", i, msg.Payload)
		}
	}
}

// TestRemote5SamePayloadTwiceWithOverlappingFilters: Mosquitto sends an
// MQTT 5 client one copy of a message per matching subscription; the copy
// detector drops the extra copies, but a device publishing the same payload
// twice in a row has published two messages, and both are delivered.
func TestRemote5SamePayloadTwiceWithOverlappingFilters(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + m.Addr()}}, true)
	wide, _ := busSubscribe(t, r, "dup/#")
	narrow, _ := busSubscribe(t, r, "dup/+/x")
	device := hubtest.ConnectMQTT(t, m.Addr(), "repeater")
	for _, p := range []string{"same", "same", "other", "same"} {
		hubtest.PublishMQTT(t, device, "dup/a/x", 1, false, []byte(p))
	}
	hubtest.PublishMQTT(t, device, "dup/end", 1, false, nil) // only the wide filter: the last one
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return wide.count() == 5 }, "the wide filter got %d messages, want 5", wide.count())
	payloads := func(rec *busRecorder) string {
		var ps []string
		for _, msg := range rec.all() {
			ps = append(ps, msg.Topic+"="+string(msg.Payload))
		}
		return strings.Join(ps, " ")
	}
	if got, want := payloads(wide), "dup/a/x=same dup/a/x=same dup/a/x=other dup/a/x=same dup/end="; got != want {
		t.Errorf("the wide filter got %s, want %s", got, want)
	}
	if got, want := payloads(narrow), "dup/a/x=same dup/a/x=same dup/a/x=other dup/a/x=same"; got != want {
		t.Errorf("the narrow filter got %s, want %s", got, want)
	}
}

// TestRemote5SubscribeChurn: 1,000 quick Subscribe and cancel cycles, from
// four goroutines on overlapping filters, leave Mosquitto with the
// subscriptions it had before (its $SYS count), and a filter churned still
// works afterwards.
func TestRemote5SubscribeChurn(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + m.Addr()}}, true)
	watcher := hubtest.ConnectMQTT(t, m.Addr(), "watcher")
	counts := hubtest.SubscribeMQTT(t, watcher, "$SYS/broker/subscriptions/count", 0)
	// Mosquitto publishes the count each second when it changed: last is
	// the latest one it published.
	count := ""
	last := func() string {
		for {
			select {
			case m := <-counts:
				count = m.Payload
			default:
				return count
			}
		}
	}
	countIs := func(want int) func() error {
		return func() error {
			if got := last(); got != strconv.Itoa(want) {
				return fmt.Errorf("Mosquitto counts %q subscriptions, want %d", got, want)
			}
			return nil
		}
	}
	// The watcher's own, and none of the Remote's.
	hubtest.EventuallyNil(t, hubtest.Timeout, countIs(1))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 250 {
				cancel, err := r.Subscribe(fmt.Sprintf("churn/%d/#", (g+i)%3), func(bridge.Message) {})
				if err != nil {
					t.Errorf("Subscribe %d of goroutine %d: %v", i, g, err)
					return
				}
				cancel()
			}
		})
	}
	wg.Wait()
	// One more subscription, by the watcher, makes the count change, so that
	// Mosquitto publishes it: the watcher's two, and none of the Remote's.
	hubtest.SubscribeMQTT(t, watcher, "marker/#", 0)
	hubtest.EventuallyNil(t, 2*hubtest.Timeout, countIs(2))
	got, _ := busSubscribe(t, r, "churn/1/#")
	device := hubtest.ConnectMQTT(t, m.Addr(), "churn-device")
	hubtest.PublishMQTT(t, device, "churn/1/x", 1, false, []byte("after"))
	eventuallyTopics(t, got, "", "churn/1/x")
}

// TestRemote5CloseDuringConnect: a node that never answers the CONNECT does
// not hold Close past CloseTimeout, in MQTT 5 as in 3.1.1.
func TestRemote5CloseDuringConnect(t *testing.T) {
	f := startFakeBroker(t, nil)
	f.noConnack = true
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + strings.TrimPrefix(f.URL(), "mqtt://")},
		ConnectTimeout: time.Minute, CloseTimeout: 2 * time.Second}, false)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return f.connections() == 1 }, "no connection")
	start := time.Now()
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close while waiting for CONNACK: %v after %v", err, time.Since(start))
	}
}
