package broker

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// The Remote given the nodes of a cluster: real Mosquittos stand for the
// nodes (they share nothing, so a device is connected to the node whose
// messages it should bring).

func TestRotationTriesEveryNodeBeforeWaiting(t *testing.T) {
	r := rotation{n: 3, current: 1}
	var order []int
	for i := range 3 {
		over := r.fail()
		order = append(order, r.current)
		if over != (i == 2) {
			t.Fatalf("failure %d: round over %v; want a wait only after the third failure in a row", i+1, over)
		}
	}
	if !slices.Equal(order, []int{2, 0, 1}) {
		t.Fatalf("nodes tried %v, want 2, 0, 1 (the next each time, around the list)", order)
	}
	// A connect ends the round: a loss then tries the others at once.
	r.fail()
	r.connected()
	for range 2 {
		if r.fail() {
			t.Fatal("after a connect, a wait came before every node was tried")
		}
	}
	if !r.fail() {
		t.Fatal("three failures in a row after a connect: want a wait")
	}
	one := rotation{n: 1}
	for range 3 {
		if !one.fail() || one.current != 0 {
			t.Fatal("one node: each failure is a round (the wait of a single broker, as before)")
		}
	}
}

func TestRotationStartsAtARandomNode(t *testing.T) {
	seen := map[int]int{} // at most 3 keys
	for range 300 {
		seen[newRotation(3).current]++
	}
	for i := range 3 {
		if seen[i] < 50 {
			t.Errorf("node %d was first %d times in 300, want about 100 (replicas spread): %v", i, seen[i], seen)
		}
	}
}

// nodeIndex is which of ms the Remote is connected to.
func nodeIndex(t *testing.T, r *Remote, ms []*hubtest.Mosquitto) int {
	t.Helper()
	for i, m := range ms {
		if r.URL() == m.URL() {
			return i
		}
	}
	t.Fatalf("the Remote is on %s, none of the nodes", r.URL())
	return -1
}

// TestRemoteFailsOverBetweenNodes: three nodes. The Remote is on one; that
// node stops, and it is on another at once (no backoff), with its
// subscriptions made again and the gap reported; messages flow both ways
// through the new node. The stopped node comes back: the Remote stays where
// it is. Every node stops: not ready, naming each node tried. One comes
// back: ready again, without a restart.
func TestRemoteFailsOverBetweenNodes(t *testing.T) {
	ms := []*hubtest.Mosquitto{hubtest.StartMosquitto(t), hubtest.StartMosquitto(t), hubtest.StartMosquitto(t)}
	urls := []string{ms[0].URL(), ms[1].URL(), ms[2].URL()}
	status := newStatusLog()
	// A backoff this long would show: the failover must not wait for it.
	r := connectRemoteTest(t, RemoteConfig{URLs: urls, OnStatus: status.record, MaxReconnectInterval: time.Minute}, true)
	if s := status.next(t); !s.Up || s.Gap || s.URL != r.URL() {
		t.Fatalf("first status %+v, want Up on %s without Gap", s, r.URL())
	}
	if !slices.Equal(r.URLs(), urls) {
		t.Fatalf("URLs() = %v, want %v", r.URLs(), urls)
	}
	stream, _ := busSubscribe(t, r, "s/#")
	first := nodeIndex(t, r, ms)
	device := hubtest.ConnectMQTT(t, ms[first].Addr(), "device-first")
	hubtest.PublishMQTT(t, device, "s/before", 1, false, nil)
	eventuallyTopics(t, stream, "", "s/before")

	stopped := time.Now()
	ms[first].Stop()
	if s := status.next(t); s.Up || !errors.Is(s.Err, ErrUnavailable) || s.URL != urls[first] || !strings.Contains(s.Err.Error(), urls[first]) {
		t.Fatalf("status after the node stopped: %+v, want down naming %s", s, urls[first])
	}
	s := status.next(t)
	if !s.Up || !s.Gap || s.URL == urls[first] {
		t.Fatalf("status after the failover: %+v, want Up with Gap on another node", s)
	}
	failover := time.Since(stopped)
	t.Logf("failover: Up on %s %v after %s stopped", s.URL, failover.Round(time.Millisecond), urls[first])
	if failover > patience {
		t.Fatalf("failover took %v: the Remote waited before trying the next node", failover)
	}
	second := nodeIndex(t, r, ms)
	if err := r.Ready(); err != nil {
		t.Fatalf("Ready after the failover: %v", err)
	}
	// The subscription was made again on the new node, and commands go there.
	device = hubtest.ConnectMQTT(t, ms[second].Addr(), "device-second")
	commands := deviceSubscribe(t, device, "cmd/#")
	hubtest.PublishMQTT(t, device, "s/after", 1, false, nil)
	eventuallyTopics(t, stream, "", "s/before", "s/after")
	mustPublish(t, r, "cmd/after", 1)
	if d := hubtest.Receive(t, commands, hubtest.Timeout, "command after the failover"); d.Topic != "cmd/after" {
		t.Fatalf("device got %v", d)
	}

	// The first node returns; the Remote stays on the second, which serves.
	ms[first].Restart()
	hubtest.PublishMQTT(t, device, "s/still", 1, false, nil)
	eventuallyTopics(t, stream, "", "s/before", "s/after", "s/still")
	if got := nodeIndex(t, r, ms); got != second {
		t.Fatalf("the Remote moved to node %d when node %d came back, while node %d served it", got, first, second)
	}

	// Every node down: not ready, and the reason names each node tried.
	for _, m := range ms {
		m.Stop()
	}
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		err := r.Ready()
		if err == nil || !strings.Contains(err.Error(), "no node of the 3 answered") {
			return fmt.Errorf("Ready with every node down: %v, want no node of the 3 answered", err)
		}
		for _, u := range urls {
			if !strings.Contains(err.Error(), u) {
				return fmt.Errorf("Ready with every node down: %v, want it to name %s", err, u)
			}
		}
		return nil
	})
	t.Logf("every node down: %v", r.Ready())
	if err := r.Publish(t.Context(), bridge.Message{Topic: "cmd/down", QoS: 1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish with every node down: %v, want ErrUnavailable", err)
	}

	// One node back: ready on it, without a restart.
	third := (second + 1) % 3
	ms[third].Restart()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return r.Ready() == nil }, "not ready once node %d came back: %v", third, r.Ready())
	if got := nodeIndex(t, r, ms); got != third {
		t.Fatalf("ready on node %d, want %d, the only one up", got, third)
	}
	device = hubtest.ConnectMQTT(t, ms[third].Addr(), "device-third")
	hubtest.PublishMQTT(t, device, "s/back", 1, false, nil)
	eventuallyTopics(t, stream, "", "s/before", "s/after", "s/still", "s/back")
}

// TestRemotePublishInFlightDuringFailover: the node drops the connection
// while a QoS 1 publish waits for its PUBACK. The Publish fails with
// ErrUnavailable (never a success without a PUBACK), the Remote fails over
// to the other node, and the message is not sent again there.
func TestRemotePublishInFlightDuringFailover(t *testing.T) {
	f := startFakeBroker(t, func(p fakePublish) fakeAction {
		if p.Topic == "cmd/doomed" {
			return fakeHang
		}
		return fakeAck
	})
	m := hubtest.StartMosquitto(t)
	m.Stop() // the Remote connects to the first node that answers: the fake
	status := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL(), f.URL()}, OnStatus: status.record}, true)
	if s := status.next(t); !s.Up || s.URL != f.URL() {
		t.Fatalf("first status %+v, want Up on %s, the node that answers", s, f.URL())
	}
	m.Restart()
	device := hubtest.ConnectMQTT(t, m.Addr(), "device")
	commands := deviceSubscribe(t, device, "cmd/#")

	err := r.Publish(t.Context(), bridge.Message{Topic: "cmd/doomed", QoS: 1})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish when the node dropped the connection = %v, want ErrUnavailable", err)
	}
	if s := status.next(t); s.Up || s.URL != f.URL() {
		t.Fatalf("status %+v, want down on %s", s, f.URL())
	}
	if s := status.next(t); !s.Up || !s.Gap || s.URL != m.URL() {
		t.Fatalf("status %+v, want Up with Gap on %s", s, m.URL())
	}
	mustPublish(t, r, "cmd/next", 1)
	if d := hubtest.Receive(t, commands, hubtest.Timeout, "the command after the failover"); d.Topic != "cmd/next" {
		t.Fatalf("the device on the new node got %v first, want cmd/next (cmd/doomed is never sent again)", d)
	}
	var topics []string
	for _, p := range f.publishes() {
		topics = append(topics, p.Topic)
	}
	if !slices.Equal(topics, []string{"cmd/doomed"}) {
		t.Fatalf("the first node received %q: want cmd/doomed once", topics)
	}
}

// TestRemoteAllNodesDownAtStart: Ready names every node tried, and the
// Remote connects once one of them is up.
func TestRemoteAllNodesDownAtStart(t *testing.T) {
	a, b := hubtest.StartMosquitto(t), hubtest.StartMosquitto(t)
	a.Stop()
	b.Stop()
	status := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{a.URL(), b.URL()}, OnStatus: status.record}, false)
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		err := r.Ready()
		if err == nil || !strings.Contains(err.Error(), a.URL()) || !strings.Contains(err.Error(), b.URL()) || !strings.Contains(err.Error(), "connection refused") {
			return fmt.Errorf("Ready = %v, want both nodes named, refused", err)
		}
		return nil
	})
	b.Restart()
	if s := status.next(t); !s.Up || s.Gap || s.URL != b.URL() {
		t.Fatalf("status %+v, want Up on %s without Gap (nothing was lost: it never connected)", s, b.URL())
	}
}
