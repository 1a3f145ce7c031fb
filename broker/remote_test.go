package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/motesim"
)

// patience is how long something that should happen at once may take on a
// busy machine, far from what the slow way would take.
const patience = 5 * time.Second

// statusLog records what OnStatus reports.
type statusLog struct {
	mu  sync.Mutex
	all []Status
	ch  chan Status
}

func newStatusLog() *statusLog { return &statusLog{ch: make(chan Status, 64)} }

func (l *statusLog) record(s Status) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
	select {
	case l.ch <- s:
	default: // the test reads l.all
	}
}

// next returns the next status reported, failing after the timeout.
func (l *statusLog) next(t *testing.T) Status {
	t.Helper()
	return hubtest.Receive(t, l.ch, hubtest.Timeout, "status change")
}

func (l *statusLog) history() []Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

func mustPublish(t *testing.T, bus bridge.Bus, topic string, qos byte) {
	t.Helper()
	if err := bus.Publish(t.Context(), bridge.Message{Topic: topic, Payload: []byte(topic), QoS: qos}); err != nil {
		t.Fatalf("Publish %s: %v", topic, err)
	}
}

// TestRemoteReconnectsAfterUpstreamRestarts: Mosquitto is stopped and started
// again, three times, while the hub is subscribed. Each time the Remote
// reports the loss and Ready fails, publishing fails at once, a
// subscription made meanwhile waits; once Mosquitto is back the Remote
// reconnects by itself, makes every subscription again, reports Up with
// Gap, and messages flow both ways.
func TestRemoteReconnectsAfterUpstreamRestarts(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	status := newStatusLog()
	// A Publish that waited for the upstream would wait this long.
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}, OnStatus: status.record, PublishTimeout: time.Minute}, true)
	if s := status.next(t); !s.Up || s.Gap {
		t.Fatalf("first status %+v, want Up without Gap", s)
	}
	stream, _ := busSubscribe(t, r, "s/#")
	var want []string

	for cycle := 1; cycle <= 3; cycle++ {
		device := hubtest.ConnectMQTT(t, m.Addr(), fmt.Sprintf("device-%d", cycle))
		commands := deviceSubscribe(t, device, "cmd/#")
		before := fmt.Sprintf("s/%d/before", cycle)
		hubtest.PublishMQTT(t, device, before, 1, false, nil)
		want = append(want, before)
		eventuallyTopics(t, stream, "", want...)
		mustPublish(t, r, "cmd/before", 1)
		if d := hubtest.Receive(t, commands, hubtest.Timeout, "command before the restart"); d.Topic != "cmd/before" {
			t.Fatalf("device got %v", d)
		}

		stopped := time.Now()
		m.Stop()
		s := status.next(t)
		if s.Up || !errors.Is(s.Err, ErrUnavailable) {
			t.Fatalf("status after Stop: %+v, want down with ErrUnavailable", s)
		}
		lossSeen := time.Since(stopped)
		if err := r.Ready(); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Ready while down = %v", err)
		}
		start := time.Now()
		err := r.Publish(t.Context(), bridge.Message{Topic: "cmd/lost", QoS: 1})
		if took := time.Since(start); !errors.Is(err, ErrUnavailable) || took > patience {
			t.Fatalf("Publish while down: %v after %v; want ErrUnavailable at once, not after the PublishTimeout of a minute", err, took)
		}
		// A subscription made while down is made once the upstream is back.
		late, _ := busSubscribe(t, r, fmt.Sprintf("late/%d", cycle))

		m.Restart()
		restarted := time.Now()
		s = status.next(t)
		if !s.Up || !s.Gap || s.Err != nil {
			t.Fatalf("status after Restart: %+v, want Up with Gap", s)
		}
		t.Logf("cycle %d: loss reported %v after Stop; Up %v after Mosquitto accepted connections again",
			cycle, lossSeen.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		if err := r.Ready(); err != nil {
			t.Fatalf("Ready after reconnect = %v", err)
		}

		// The old device went with the old broker; a new one talks to the hub.
		device = hubtest.ConnectMQTT(t, m.Addr(), fmt.Sprintf("device-%d-again", cycle))
		commands = deviceSubscribe(t, device, "cmd/#")
		after := fmt.Sprintf("s/%d/after", cycle)
		hubtest.PublishMQTT(t, device, after, 1, false, nil)
		want = append(want, after)
		eventuallyTopics(t, stream, "", want...)
		hubtest.PublishMQTT(t, device, fmt.Sprintf("late/%d", cycle), 1, false, nil)
		eventuallyTopics(t, late, "", fmt.Sprintf("late/%d", cycle))
		mustPublish(t, r, "cmd/after", 1)
		if d := hubtest.Receive(t, commands, hubtest.Timeout, "command after reconnect"); d.Topic != "cmd/after" {
			t.Fatalf("device got %v", d)
		}
	}
	if h := status.history(); len(h) != 1+2*3 {
		t.Errorf("status changes: %+v, want 7 (up, then down and up three times)", h)
	}
}

// TestRemoteStartsBeforeUpstream: ConnectRemote returns at once with the
// upstream down, Subscribe works, Publish fails; once the upstream comes up
// the Remote connects (no Gap: nothing was lost) and the subscription gets
// its retained messages.
func TestRemoteStartsBeforeUpstream(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	m.Stop()
	status := newStatusLog()
	start := time.Now()
	// A ConnectRemote that waited for the upstream would not return before
	// the Restart below.
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}, OnStatus: status.record}, false)
	if took := time.Since(start); took > patience {
		t.Errorf("ConnectRemote took %v with the upstream down, want it to return at once", took)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return r.Ready() != nil && strings.Contains(r.Ready().Error(), "refused")
	}, "Ready does not say why: %v", r.Ready())
	t.Logf("Ready while the upstream is down: %v", r.Ready())
	sub, _ := busSubscribe(t, r, "boot/#")
	if err := r.Publish(t.Context(), bridge.Message{Topic: "boot/x", QoS: 0}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("QoS 0 Publish while down = %v, want ErrUnavailable (never a silent drop)", err)
	}

	m.Restart()
	device := hubtest.ConnectMQTT(t, m.Addr(), "device-boot")
	hubtest.PublishMQTT(t, device, "boot/state", 1, true, []byte("on"))
	if s := status.next(t); !s.Up || s.Gap {
		t.Fatalf("status %+v, want Up without Gap", s)
	}
	hubtest.PublishMQTT(t, device, "boot/live", 1, false, nil)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return slices.Contains(sub.topics(""), "boot/live") }, "got %q", sub.topics(""))
	if got := sub.topics(""); !slices.Contains(got, "boot/state") {
		t.Errorf("got %q: the retained boot/state is missing", got)
	}
}

// TestRemotePublishInFlightWhenConnectionDrops: the connection drops while a
// QoS 1 publish waits for its PUBACK. Publish fails at once with
// ErrUnavailable, and the message is never sent again on the next
// connection (paho's own reconnect would resend it, late).
func TestRemotePublishInFlightWhenConnectionDrops(t *testing.T) {
	f := startFakeBroker(t, func(p fakePublish) fakeAction {
		if p.Topic == "cmd/doomed" {
			return fakeHang
		}
		return fakeAck
	})
	status := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{f.URL()}, OnStatus: status.record}, true)
	status.next(t) // up
	start := time.Now()
	err := r.Publish(t.Context(), bridge.Message{Topic: "cmd/doomed", QoS: 1})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish on a dropped connection = %v, want ErrUnavailable", err)
	}
	t.Logf("Publish failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if s := status.next(t); s.Up {
		t.Fatalf("status %+v, want down", s)
	}
	if s := status.next(t); !s.Up || !s.Gap {
		t.Fatalf("status %+v, want Up with Gap", s)
	}
	mustPublish(t, r, "cmd/next", 1)
	var topics []string
	for _, p := range f.publishes() {
		topics = append(topics, p.Topic)
	}
	if !slices.Equal(topics, []string{"cmd/doomed", "cmd/next"}) {
		t.Fatalf("the broker received %q: want cmd/doomed once, then cmd/next", topics)
	}
}

// TestRemoteNoticesASilentBroker: a broker that stops answering behind an
// open connection (a network partition) is noticed by the keep-alive, and
// the Remote connects again.
func TestRemoteNoticesASilentBroker(t *testing.T) {
	f := startFakeBroker(t, nil)
	status := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{f.URL()}, KeepAlive: time.Second, OnStatus: status.record}, true)
	status.next(t)
	f.mute.Store(true)
	muted := time.Now()
	s := status.next(t)
	if s.Up || !strings.Contains(s.Err.Error(), "pingresp") {
		t.Fatalf("status %+v, want down for want of a PINGRESP", s)
	}
	t.Logf("silence noticed after %v (keep-alive 1 s): %v", time.Since(muted).Round(time.Millisecond), s.Err)
	f.mute.Store(false)
	f.dropAll() // the broker's side of the old connection
	if s := status.next(t); !s.Up || !s.Gap {
		t.Fatalf("status %+v, want Up with Gap", s)
	}
	if err := r.Ready(); err != nil {
		t.Fatal(err)
	}
}

// TestRemotePublishWaitsForTheAcknowledgement: with no PUBACK coming,
// Publish fails after PublishTimeout, or sooner when its context ends.
func TestRemotePublishWaitsForTheAcknowledgement(t *testing.T) {
	f := startFakeBroker(t, func(fakePublish) fakeAction { return fakeDrop })
	const timeout = 300 * time.Millisecond
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{f.URL()}, PublishTimeout: timeout}, true)

	start := time.Now()
	err := r.Publish(t.Context(), bridge.Message{Topic: "cmd/unanswered", QoS: 1})
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || took < timeout || took > timeout+time.Second {
		t.Fatalf("Publish without PUBACK: %v after %v; want ErrUnavailable after %v", err, took, timeout)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = r.Publish(ctx, bridge.Message{Topic: "cmd/unanswered", QoS: 1})
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > timeout {
		t.Fatalf("Publish with a 50 ms context: %v after %v", err, took)
	}
	// QoS 0 asks for no acknowledgement: written is done.
	if err := r.Publish(t.Context(), bridge.Message{Topic: "cmd/qos0", QoS: 0}); err != nil {
		t.Fatalf("QoS 0 Publish: %v", err)
	}
}

// TestRemoteClose: Close is bounded, idempotent, reports the Remote down,
// and leaves Publish and Subscribe with ErrClosed; it also cuts short an
// attempt that waits for a CONNACK that never comes.
func TestRemoteClose(t *testing.T) {
	t.Run("Connected", func(t *testing.T) {
		m := hubtest.StartMosquitto(t)
		status := newStatusLog()
		r := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}, OnStatus: status.record}, true)
		status.next(t)
		busSubscribe(t, r, "x/#")
		start := time.Now()
		if err := r.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Logf("Close took %v", time.Since(start).Round(time.Millisecond))
		if err := r.Close(context.Background()); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if s := status.next(t); s.Up || !errors.Is(s.Err, ErrUnavailable) || !strings.Contains(s.Err.Error(), "closed") {
			t.Fatalf("status after Close %+v", s)
		}
		if err := r.Publish(t.Context(), bridge.Message{Topic: "x/1"}); err != ErrClosed {
			t.Fatalf("Publish after Close = %v, want ErrClosed", err)
		}
		if _, err := r.Subscribe("x/#", func(bridge.Message) {}); err != ErrClosed {
			t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
		}
		if err := r.Ready(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("Ready after Close = %v", err)
		}
	})
	t.Run("WhileRetrying", func(t *testing.T) {
		// A broker that refuses every CONNECT, counting the attempts. After
		// the sixth the wait before the next one is 4 to 8 s (from 250 ms,
		// doubling, drawn between half and all of it): a Close that waited
		// for it would take at least 4 s; one that cuts it short takes
		// hardly any time, and 3 s leaves a busy machine room.
		f := startFakeBroker(t, nil)
		f.connack = 3 // server unavailable
		r := connectRemoteTest(t, RemoteConfig{URLs: []string{f.URL()}, MaxReconnectInterval: time.Minute}, false)
		const attempts = 6
		hubtest.Eventually(t, 2*hubtest.Timeout, func() bool { return f.connections() >= attempts }, "the Remote did not try %d times", attempts)
		start := time.Now()
		if err := r.Close(context.Background()); err != nil || time.Since(start) > 3*time.Second {
			t.Fatalf("Close while waiting to retry: %v after %v", err, time.Since(start))
		}
	})
	t.Run("DuringHandshake", func(t *testing.T) {
		f := startFakeBroker(t, nil)
		f.noConnack = true
		r := connectRemoteTest(t, RemoteConfig{URLs: []string{f.URL()}, ConnectTimeout: time.Minute}, false)
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return f.connections() == 1 }, "no connection")
		start := time.Now()
		if err := r.Close(context.Background()); err != nil || time.Since(start) > 10*time.Second { // waiting would take the minute
			t.Fatalf("Close while waiting for CONNACK: %v after %v", err, time.Since(start))
		}
	})
}

// TestRemoteTLSCredentialsAndRefusal: mqtts:// with the credentials in the
// URL, against the embedded broker's TLS listener and users: a permitted
// subscription works, a forbidden one is refused with ErrRefused, and wrong
// credentials keep the Remote down saying why, without the password.
func TestRemoteTLSCredentialsAndRefusal(t *testing.T) {
	certs := hubtest.NewTLSFiles(t, 1)
	cert, err := tls.LoadX509KeyPair(certs.CertFile, certs.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	e, _, _ := securedBroker(t, Config{TLSAddr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	url := "mqtts://alice:alice-secret@" + e.TLSAddr().String()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{url}, TLS: certs.ClientConfig()}, true)
	nodes, _ := busSubscribe(t, r, "nodes/#")
	if _, err := r.Subscribe("secret/#", func(bridge.Message) {}); !errors.Is(err, ErrRefused) {
		t.Fatalf("forbidden subscription: %v, want ErrRefused", err)
	}
	ops, err := hubtest.ConnectMQTTAs(e.Addr().String(), "ops-1", "ops", "ops-secret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Disconnect(100) })
	hubtest.PublishMQTT(t, ops, "nodes/n1/temperature", 1, false, []byte("21"))
	eventuallyTopics(t, nodes, "", "nodes/n1/temperature")

	bad := connectRemoteTest(t, RemoteConfig{URLs: []string{"mqtts://alice:wrong-password@" + e.TLSAddr().String()}, TLS: certs.ClientConfig()}, false)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return strings.Contains(fmt.Sprint(bad.Ready()), "not Authorized") }, "Ready = %v", bad.Ready())
	if msg := bad.Ready().Error(); strings.Contains(msg, "wrong-password") {
		t.Fatalf("Ready shows the password: %s", msg)
	}
	untrusted := connectRemoteTest(t, RemoteConfig{URLs: []string{url}}, false) // the system's roots do not know the test CA
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return strings.Contains(fmt.Sprint(untrusted.Ready()), "certificate") }, "Ready = %v", untrusted.Ready())
}

// TestRemoteWithMotesAcrossRestart: the simulated motes (real paho clients
// that reconnect by themselves) stream through Mosquitto to the Remote;
// Mosquitto goes away mid-stream and comes back; the stream resumes and
// commands reach the motes again, which echo them.
func TestRemoteWithMotesAcrossRestart(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	status := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}, OnStatus: status.record}, true)
	status.next(t)
	stream, _ := busSubscribe(t, r, "nodes/#")

	ctx, stop := context.WithCancel(t.Context())
	simDone := make(chan error, 1)
	go func() {
		simDone <- motesim.Run(ctx, motesim.Config{
			Broker: m.URL(), Motes: 2, Seed: 1,
			ASNInterval: 20 * time.Millisecond, TemperatureInterval: 50 * time.Millisecond,
			MaxReconnectInterval: 200 * time.Millisecond, Logger: quietLogger(),
		})
	}()
	defer func() {
		stop()
		if err := hubtest.Receive(t, simDone, hubtest.Timeout, "end of the motes"); err != nil {
			t.Error(err)
		}
	}()
	countOf := func(topic string) int {
		n := 0
		for _, got := range stream.topics("") {
			if got == topic {
				n++
			}
		}
		return n
	}
	command := func(state bool) {
		t.Helper()
		payload := fmt.Sprintf(`{"state":%v}`, state)
		echoes := countOf("nodes/mote-1/relay/i2c0-3b")
		if err := r.Publish(t.Context(), bridge.Message{Topic: "nodes/mote-1/relay/i2c0-3b/set", Payload: []byte(payload), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool {
			msgs := stream.all()
			last := msgs[len(msgs)-1]
			for _, m := range msgs {
				if m.Topic == "nodes/mote-1/relay/i2c0-3b" {
					last = m
				}
			}
			return countOf("nodes/mote-1/relay/i2c0-3b") > echoes && string(last.Payload) == payload
		}, "mote-1 did not echo %s", payload)
	}

	hubtest.Eventually(t, hubtest.Timeout, func() bool { return countOf("nodes/mote-2/asn") >= 5 }, "the motes' stream does not arrive")
	command(true)

	m.Stop()
	if s := status.next(t); s.Up {
		t.Fatalf("status %+v after Stop", s)
	}
	asnAtStop := countOf("nodes/mote-2/asn")
	m.Restart()
	if s := status.next(t); !s.Up || !s.Gap {
		t.Fatalf("status %+v after Restart", s)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return countOf("nodes/mote-2/asn") >= asnAtStop+5 }, "the stream did not resume")
	command(false)
}
