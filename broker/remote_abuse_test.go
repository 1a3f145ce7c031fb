package broker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// Nodes that misbehave, in both protocol versions: the failover must move
// on, wait after a whole round, say once what is wrong, and never lose or
// repeat a command silently.

// protocols are the URL schemes of the two protocol versions.
var protocols = []struct{ name, scheme string }{{"MQTT3", "mqtt://"}, {"MQTT5", "mqtt5://"}}

func debugLogger() (*slog.Logger, *hubtest.LogBuffer) {
	buf := &hubtest.LogBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// TestRemoteMovesPastASilentNode: a node that accepts the TCP connection and
// never sends a CONNACK holds each attempt ConnectTimeout at most; the
// rotation moves on to the next node, and comes back to it after the round.
func TestRemoteMovesPastASilentNode(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			silent := startFakeBroker(t, nil)
			silent.noConnack = true
			m := hubtest.StartMosquitto(t)
			m.Stop()
			silentURL := p.scheme + strings.TrimPrefix(silent.URL(), "mqtt://")
			r := connectRemoteTest(t, RemoteConfig{URLs: []string{silentURL, p.scheme + m.Addr()}, ConnectTimeout: 300 * time.Millisecond}, false)
			hubtest.Eventually(t, hubtest.Timeout, func() bool { return silent.connections() >= 3 },
				"the silent node was tried %d times: the rotation hangs on it", silent.connections())
			if err := r.Ready(); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(silent.URL(), "mqtt://")) {
				t.Fatalf("Ready = %v, want the silent node named", err)
			}
			m.Restart()
			hubtest.EventuallyNil(t, hubtest.Timeout, r.Ready)
			if !strings.HasSuffix(r.URL(), m.Addr()) {
				t.Fatalf("ready on %s, want %s", r.URL(), m.Addr())
			}
		})
	}
}

// TestRemoteFlappingNodesWaitAfterARound: every node takes the connection
// and drops it right after its CONNACK. The Remote must not spin from one
// to the other: a connection that did not last counts as its node's
// failure, and after a whole round of them it waits its backoff (250 ms,
// then 500 ms, ..., each drawn between half and all of it), as it does when
// no node answers.
func TestRemoteFlappingNodesWaitAfterARound(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			flap := func(px *mqttProxy) { px.flap = true }
			a := startMQTTProxy(t, hubtest.StartMosquitto(t).Addr(), flap)
			b := startMQTTProxy(t, hubtest.StartMosquitto(t).Addr(), flap)
			status := newStatusLog()
			r := connectRemoteTest(t, RemoteConfig{URLs: []string{p.scheme + a.Addr(), p.scheme + b.Addr()}, OnStatus: status.record,
				MaxReconnectInterval: 10 * time.Second}, false)
			const connects = 8
			all := func() []time.Time {
				ts := append(a.connections(), b.connections()...)
				slices.SortFunc(ts, time.Time.Compare)
				return ts
			}
			hubtest.Eventually(t, 2*hubtest.Timeout, func() bool { return len(all()) >= connects }, "%d connections", len(all()))
			ts := all()[:connects]
			waits := 0
			for i := 1; i < len(ts); i++ {
				if ts[i].Sub(ts[i-1]) >= minReconnectInterval/2 {
					waits++
				}
			}
			// Two nodes: a wait after every second connection, at least.
			if want := connects/2 - 1; waits < want {
				t.Fatalf("%d connections with %d waits of %v or more between them, want %d at least: %v", connects, waits, minReconnectInterval/2, want, gaps(ts))
			}
			if err := r.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// gaps are the durations between successive times.
func gaps(ts []time.Time) []time.Duration {
	var d []time.Duration
	for i := 1; i < len(ts); i++ {
		d = append(d, ts[i].Sub(ts[i-1]).Round(time.Millisecond))
	}
	return d
}

// TestRemoteAllNodesRefuseCredentials: every node refuses the hub's
// credentials. Ready names each node and why; the log has one WARN for it
// however many rounds fail; the password appears nowhere, not even at
// debug level.
func TestRemoteAllNodesRefuseCredentials(t *testing.T) {
	const password = "pw-Qx7,zz9-distinctive"
	var nodes []*fakeBroker
	var urls []string
	for range 3 {
		f := startFakeBroker(t, nil)
		f.connack = 5 // not authorized
		nodes = append(nodes, f)
		urls = append(urls, "mqtt://hub:"+strings.ReplaceAll(password, ",", "%2C")+"@"+strings.TrimPrefix(f.URL(), "mqtt://"))
	}
	log, buf := debugLogger()
	r := connectRemoteTest(t, RemoteConfig{URLs: urls, Logger: log}, false)
	hubtest.Eventually(t, 2*hubtest.Timeout, func() bool {
		return !slices.ContainsFunc(nodes, func(f *fakeBroker) bool { return f.connections() < 4 })
	}, "every node tried four times")
	err := r.Ready()
	for _, f := range nodes {
		if err == nil || !strings.Contains(err.Error(), f.URL()) || !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("Ready = %v, want %s named, not authorized", err, f.URL())
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	logged := buf.String()
	if n := strings.Count(logged, "level=WARN"); n != 1 {
		t.Errorf("%d WARN lines for one state (down, every node refusing), want 1:\n%s", n, logged)
	}
	for _, leak := range []string{password, "Qx7"} {
		if strings.Contains(logged, leak) || strings.Contains(err.Error(), leak) {
			t.Errorf("the password (%q) is in the log or in Ready:\n%s\n%v", leak, logged, err)
		}
	}
}

// TestRemoteCommandInFlightWhenTheNodeDies: a QoS 1 command is on its way
// when its node dies (the node hangs up on it, never acknowledging it). The
// Publish fails with ErrUnavailable, the Remote fails over, and the command
// is never sent again on the next node: the device there gets the next
// command first.
func TestRemoteCommandInFlightWhenTheNodeDies(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			a, b := hubtest.StartMosquitto(t), hubtest.StartMosquitto(t)
			doomed := startMQTTProxy(t, a.Addr(), func(px *mqttProxy) { px.hangOn = "cmd/doomed" })
			b.Stop() // the Remote connects to the first node that answers: the doomed one
			status := newStatusLog()
			r := connectRemoteTest(t, RemoteConfig{URLs: []string{p.scheme + doomed.Addr(), p.scheme + b.Addr()}, OnStatus: status.record}, true)
			status.next(t)
			b.Restart()
			device := hubtest.ConnectMQTT(t, b.Addr(), "device")
			commands := deviceSubscribe(t, device, "cmd/#")

			err := r.Publish(t.Context(), bridge.Message{Topic: "cmd/doomed", Payload: []byte("x"), QoS: 1})
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Publish when the node died with it = %v, want ErrUnavailable", err)
			}
			if s := status.next(t); s.Up {
				t.Fatalf("status %+v, want down", s)
			}
			if s := status.next(t); !s.Up || !s.Gap || !strings.HasSuffix(s.URL, b.Addr()) {
				t.Fatalf("status %+v, want Up with Gap on %s", s, b.Addr())
			}
			mustPublish(t, r, "cmd/next", 1)
			if d := hubtest.Receive(t, commands, hubtest.Timeout, "the command after the failover"); d.Topic != "cmd/next" {
				t.Fatalf("the device on the new node got %v first, want cmd/next (cmd/doomed is never sent again)", d)
			}
			if err := r.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-commands:
				t.Fatalf("the device got %v after cmd/next", d)
			default:
			}
		})
	}
}
