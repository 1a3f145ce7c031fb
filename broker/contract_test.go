package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// The contract suite: what bridge.Bus promises, checked the same way against
// each implementation. Devices are real paho clients connected to the broker
// behind the Bus.

// busFixture is a Bus under test and the address of the MQTT broker that
// devices reach (the embedded one itself, or the Remote's upstream).
type busFixture struct {
	bus  bridge.Bus
	addr string
}

// busImpls are the implementations under test. Each starts its own broker.
var busImpls = []struct {
	name  string
	start func(t *testing.T) busFixture
}{
	{"Embedded", func(t *testing.T) busFixture {
		e := startTest(t, Config{SysInterval: time.Second})
		return busFixture{bus: e, addr: e.Addr().String()}
	}},
	{"RemoteMosquitto", func(t *testing.T) busFixture {
		m := hubtest.StartMosquitto(t)
		return busFixture{bus: connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}}, true), addr: m.Addr()}
	}},
	// The Remote against a second broker implementation (mochi, as a plain
	// MQTT broker): nothing in it depends on Mosquitto.
	{"RemoteMochi", func(t *testing.T) busFixture {
		e := startTest(t, Config{SysInterval: time.Second})
		return busFixture{bus: connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt://" + e.Addr().String()}}, true), addr: e.Addr().String()}
	}},
	// The same two in MQTT 5 (paho.golang): the contract does not depend on
	// the protocol version.
	{"Remote5Mosquitto", func(t *testing.T) busFixture {
		m := hubtest.StartMosquitto(t)
		return busFixture{bus: connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}, Protocol: 5}, true), addr: m.Addr()}
	}},
	{"Remote5Mochi", func(t *testing.T) busFixture {
		e := startTest(t, Config{SysInterval: time.Second})
		return busFixture{bus: connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtt5://" + e.Addr().String()}}, true), addr: e.Addr().String()}
	}},
}

// quietLogger drops the logs unless the test runs with -v.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testLogWriter{}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testLogWriter struct{}

func (testLogWriter) Write(p []byte) (int, error) { return fmt.Print(string(p)) }

// connectRemoteTest connects a Remote with short timeouts, closes it when the
// test ends, and, when waitUp is set, waits until it is ready.
func connectRemoteTest(t *testing.T, cfg RemoteConfig, waitUp bool) *Remote {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.MaxReconnectInterval == 0 {
		cfg.MaxReconnectInterval = 500 * time.Millisecond
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 2 * time.Second
	}
	r, err := ConnectRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if waitUp {
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return r.Ready() == nil }, "the Remote never connected: %v", r.Ready())
	}
	return r
}

// busRecorder collects what one Bus subscription delivers.
type busRecorder struct {
	mu   sync.Mutex
	msgs []bridge.Message
}

func (r *busRecorder) fn(m bridge.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
}

func (r *busRecorder) all() []bridge.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// topics lists the topics received, leaving out those starting with skip
// (when not "").
func (r *busRecorder) topics(skip string) []string {
	var ts []string
	for _, m := range r.all() {
		if skip == "" || !strings.HasPrefix(m.Topic, skip) {
			ts = append(ts, m.Topic)
		}
	}
	return ts
}

func (r *busRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func busSubscribe(t *testing.T, bus bridge.Bus, filter string) (*busRecorder, func()) {
	t.Helper()
	r := &busRecorder{}
	cancel, err := bus.Subscribe(filter, r.fn)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", filter, err)
	}
	t.Cleanup(cancel)
	return r, cancel
}

// eventuallyTopics waits until r has received exactly want (in that order),
// not counting topics starting with skip.
func eventuallyTopics(t *testing.T, r *busRecorder, skip string, want ...string) {
	t.Helper()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return slices.Equal(r.topics(skip), want) },
		"subscription got %q, want %q", r.topics(skip), want)
}

func TestContract(t *testing.T) {
	for _, impl := range busImpls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range contractCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, impl.start(t))
				})
			}
		})
	}
}

var contractCases = []struct {
	name string
	run  func(t *testing.T, f busFixture)
}{
	{"DeliversWhatMQTTMatches", testDeliversWhatMQTTMatches},
	{"SysTopicsOnlyForDollarFilters", testSysTopics},
	{"RetainedOnSubscribe", testRetainedOnSubscribe},
	{"OncePerSubscription", testOncePerSubscription},
	{"CancelStopsDelivery", testCancelStopsDelivery},
	{"PublishReachesMQTTSubscriber", testPublishReachesMQTTSubscriber},
	{"PublishRejectsBadTopics", testPublishRejectsBadTopics},
}

// testDeliversWhatMQTTMatches: each subscription sees exactly the messages
// an MQTT subscriber of its filter would, in the order they were published.
func testDeliversWhatMQTTMatches(t *testing.T, f busFixture) {
	all, _ := busSubscribe(t, f.bus, "#")
	a, _ := busSubscribe(t, f.bus, "a/#")
	plus, _ := busSubscribe(t, f.bus, "+/b")
	exact, _ := busSubscribe(t, f.bus, "a/b")
	mid, _ := busSubscribe(t, f.bus, "a/+/c")

	device := hubtest.ConnectMQTT(t, f.addr, "device-match")
	for _, topic := range []string{"a", "a/b", "ab", "x/b", "a/b/c", "a/x/c", "a/b/c/d", "/b"} {
		hubtest.PublishMQTT(t, device, topic, 1, false, []byte(topic))
	}
	eventuallyTopics(t, all, "$", "a", "a/b", "ab", "x/b", "a/b/c", "a/x/c", "a/b/c/d", "/b")
	eventuallyTopics(t, a, "", "a", "a/b", "a/b/c", "a/x/c", "a/b/c/d")
	eventuallyTopics(t, plus, "", "a/b", "x/b", "/b")
	eventuallyTopics(t, exact, "", "a/b")
	eventuallyTopics(t, mid, "", "a/b/c", "a/x/c")
	for _, m := range exact.all() {
		if string(m.Payload) != "a/b" || m.QoS != 1 || m.Retain {
			t.Errorf("a/b arrived as %+v, want payload a/b, QoS 1, not retained", m)
		}
	}
}

// testSysTopics: the broker's own $SYS messages reach "$SYS/#" and never
// "#" or "+/..." (MQTT 3.1.1 §4.7.2). Both brokers under test publish $SYS
// topics every second, retained.
func testSysTopics(t *testing.T, f busFixture) {
	all, _ := busSubscribe(t, f.bus, "#")
	plus, _ := busSubscribe(t, f.bus, "+/broker/#")
	sys, _ := busSubscribe(t, f.bus, "$SYS/#")
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return sys.count() >= 2 }, "no $SYS message reached $SYS/#")
	for _, topic := range sys.topics("") {
		if !strings.HasPrefix(topic, "$SYS/") {
			t.Errorf("$SYS/# got %q", topic)
		}
	}
	// Once a device's message, published after the $SYS ones, has reached
	// "#", any $SYS message would have too.
	device := hubtest.ConnectMQTT(t, f.addr, "device-sys")
	hubtest.PublishMQTT(t, device, "after/sys", 1, false, nil)
	eventuallyTopics(t, all, "", "after/sys")
	if got := plus.topics(""); len(got) != 0 {
		t.Errorf("+/broker/# got %q: a wildcard at the first level must not match $ topics", got)
	}
}

// testRetainedOnSubscribe: a new subscription gets the retained messages
// matching it, once each, marked as replays (Retain and Replay set), and
// live ones not marked, even when their publisher retains them; a retained
// message that was cleared is not sent. (Which comes first, a retained
// message or a live one of another topic, is the broker's choice: Mosquitto
// sends the retained ones first, mochi not always.)
func testRetainedOnSubscribe(t *testing.T, f busFixture) {
	device := hubtest.ConnectMQTT(t, f.addr, "device-retain")
	hubtest.PublishMQTT(t, device, "r", 1, true, []byte("parent"))
	hubtest.PublishMQTT(t, device, "r/1", 1, true, []byte("child"))
	hubtest.PublishMQTT(t, device, "r/2", 1, false, []byte("not retained"))
	hubtest.PublishMQTT(t, device, "r/3", 1, true, []byte("cleared"))
	hubtest.PublishMQTT(t, device, "r/3", 1, true, nil)
	hubtest.PublishMQTT(t, device, "other", 1, true, []byte("elsewhere"))

	sub, _ := busSubscribe(t, f.bus, "r/#")
	hubtest.PublishMQTT(t, device, "r/live", 1, false, []byte("live"))
	hubtest.PublishMQTT(t, device, "r/1", 1, true, []byte("child")) // the same reading again, live
	want := []string{"r parent replay=true", "r/1 child replay=false", "r/1 child replay=true", "r/live live replay=false"}
	got := func() []string {
		var ms []string
		for _, m := range sub.all() {
			ms = append(ms, fmt.Sprintf("%s %s replay=%v", m.Topic, m.Payload, m.Replay))
			if m.Replay && !m.Retain {
				t.Errorf("%s: a replay without Retain", m.Topic)
			}
		}
		slices.Sort(ms)
		return ms
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return slices.Equal(got(), want) }, "got %q, want %q", got(), want)
}

// testOncePerSubscription: each subscription gets a message once, however
// many subscriptions (of the same filter or of overlapping ones) want it.
func testOncePerSubscription(t *testing.T, f busFixture) {
	same1, _ := busSubscribe(t, f.bus, "o/#")
	same2, _ := busSubscribe(t, f.bus, "o/#")
	plus, _ := busSubscribe(t, f.bus, "o/+")
	first, _ := busSubscribe(t, f.bus, "+/x")
	device := hubtest.ConnectMQTT(t, f.addr, "device-once")
	hubtest.PublishMQTT(t, device, "o/x", 1, false, nil)
	hubtest.PublishMQTT(t, device, "o/y", 1, false, nil)
	eventuallyTopics(t, same1, "", "o/x", "o/y")
	eventuallyTopics(t, same2, "", "o/x", "o/y")
	eventuallyTopics(t, plus, "", "o/x", "o/y")
	// o/y, which "+/x" does not match, came after o/x: a second copy of
	// o/x would have arrived by now.
	if got := first.topics(""); !slices.Equal(got, []string{"o/x"}) {
		t.Errorf("+/x got %q, want o/x once", got)
	}
}

// testCancelStopsDelivery: after cancel returns its callback is never called
// again, even with messages in flight; the other subscriptions of the same
// filter keep theirs; subscribing again after the last cancel works.
func testCancelStopsDelivery(t *testing.T, f busFixture) {
	cancelled, cancel := busSubscribe(t, f.bus, "c/#")
	kept, cancelKept := busSubscribe(t, f.bus, "c/#")
	device := hubtest.ConnectMQTT(t, f.addr, "device-cancel")
	hubtest.PublishMQTT(t, device, "c/1", 1, false, nil)
	eventuallyTopics(t, cancelled, "", "c/1")

	// A stream of messages, cancelled in the middle.
	const flood = 200
	var sent atomic.Int64
	streamDone := make(chan error, 1)
	go func() {
		for i := range flood {
			tok := device.Publish(fmt.Sprintf("c/flood/%d", i), 0, false, []byte("x"))
			if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
				streamDone <- fmt.Errorf("publish %d: %v", i, tok.Error())
				return
			}
			sent.Add(1)
		}
		streamDone <- nil
	}()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return cancelled.count() > 10 }, "the stream does not arrive: %d sent, %d received %q", sent.Load(), cancelled.count(), cancelled.topics(""))
	cancel()
	atCancel := cancelled.count()
	cancel() // a second call does nothing
	if err := hubtest.Receive(t, streamDone, hubtest.Timeout, "end of the stream"); err != nil {
		t.Fatal(err)
	}
	hubtest.PublishMQTT(t, device, "c/end", 1, false, nil)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return slices.Contains(kept.topics(""), "c/end") }, "the other subscription of c/# lost its messages")
	if n := cancelled.count(); n != atCancel {
		t.Fatalf("%d messages delivered after cancel returned", n-atCancel)
	}
	if n := kept.count(); n != 1+flood+1 {
		t.Errorf("the kept subscription got %d messages, want %d", n, 1+flood+1)
	}
	t.Logf("cancelled after %d of %d messages", atCancel-1, flood)

	// The last subscription of c/# goes, then a new one comes.
	cancelKept()
	again, _ := busSubscribe(t, f.bus, "c/#")
	hubtest.PublishMQTT(t, device, "c/again", 1, false, nil)
	eventuallyTopics(t, again, "", "c/again")
}

// deviceMessage is what an MQTT subscriber received, QoS included.
type deviceMessage struct {
	Topic, Payload string
	QoS            byte
	Retain         bool
}

func (m deviceMessage) String() string {
	return fmt.Sprintf("%s %q qos=%d retain=%v", m.Topic, m.Payload, m.QoS, m.Retain)
}

// deviceSubscribe subscribes c to filter at QoS 1 and returns what arrives.
func deviceSubscribe(t *testing.T, c paho.Client, filter string) <-chan deviceMessage {
	t.Helper()
	ch := make(chan deviceMessage, 64)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		select {
		case ch <- deviceMessage{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retain: m.Retained()}:
		default:
			t.Errorf("device buffer full: %s lost", m.Topic())
		}
	})
	if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		t.Fatalf("device subscribe %q: %v", filter, tok.Error())
	}
	return ch
}

// testPublishReachesMQTTSubscriber: what the hub publishes reaches a device
// with the same topic, payload, QoS and retain flag.
func testPublishReachesMQTTSubscriber(t *testing.T, f busFixture) {
	device := hubtest.ConnectMQTT(t, f.addr, "device-commands")
	got := deviceSubscribe(t, device, "cmd/#")
	for _, m := range []bridge.Message{
		{Topic: "cmd/relay/set", Payload: []byte(`{"state":true}`), QoS: 1},
		{Topic: "cmd/led/set", Payload: []byte("on"), QoS: 0},
		{Topic: "cmd/binary", Payload: []byte{0, 0xff, 0x80}, QoS: 1},
	} {
		if err := f.bus.Publish(t.Context(), m); err != nil {
			t.Fatalf("Publish %s: %v", m.Topic, err)
		}
		want := deviceMessage{Topic: m.Topic, Payload: string(m.Payload), QoS: m.QoS}
		if d := hubtest.Receive(t, got, hubtest.Timeout, m.Topic); d != want {
			t.Errorf("device got %v, want %v", d, want)
		}
	}

	// Retained: a device that subscribes later gets it, flagged.
	if err := f.bus.Publish(t.Context(), bridge.Message{Topic: "cmd/state", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	hubtest.Receive(t, got, hubtest.Timeout, "cmd/state live")
	late := hubtest.ConnectMQTT(t, f.addr, "device-late")
	lateGot := deviceSubscribe(t, late, "cmd/state")
	want := deviceMessage{Topic: "cmd/state", Payload: "kept", QoS: 1, Retain: true}
	if d := hubtest.Receive(t, lateGot, hubtest.Timeout, "retained cmd/state"); d != want {
		t.Errorf("late device got %v, want %v", d, want)
	}
}

// testPublishRejectsBadTopics: a topic no MQTT client may publish to is
// refused before it reaches the broker, and the Bus keeps working.
func testPublishRejectsBadTopics(t *testing.T, f busFixture) {
	for _, topic := range []string{"", "a/#", "a/+/b"} {
		if err := f.bus.Publish(t.Context(), bridge.Message{Topic: topic, QoS: 1}); err == nil {
			t.Errorf("Publish to %q: no error", topic)
		}
	}
	sub, _ := busSubscribe(t, f.bus, "ok")
	if err := f.bus.Publish(t.Context(), bridge.Message{Topic: "ok", QoS: 1}); err != nil {
		t.Fatalf("Publish after bad ones: %v", err)
	}
	eventuallyTopics(t, sub, "", "ok")
}
