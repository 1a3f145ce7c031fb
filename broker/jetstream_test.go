package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/natstest"
)

// jsBed is a nats-server cluster with a stream the test made, and a NATS
// client to publish with.
type jsBed struct {
	cluster *natstest.Cluster
	nc      *nats.Conn
	js      jetstream.JetStream
}

func newJSBed(t *testing.T, nodes int) *jsBed {
	t.Helper()
	c := natstest.StartCluster(t, natstest.Options{Nodes: nodes})
	nc, err := nats.Connect(c.NATSURLs()[0], nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &jsBed{cluster: c, nc: nc, js: js}
}

// createStream makes a stream; right after the cluster's start the meta
// leader may not see every peer yet ("no suitable peers for placement"), so
// it asks again, bounded.
func (b *jsBed) createStream(t *testing.T, cfg jetstream.StreamConfig) {
	t.Helper()
	hubtest.EventuallyNil(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := b.js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
		return nil
	})
}

func (b *jsBed) publish(t *testing.T, subject, payload string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ack, err := b.js.Publish(ctx, subject, []byte(payload))
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// feedLog records what a feed hands its subscriber and tells OnFloor, in
// order.
type feedLog struct {
	mu     sync.Mutex
	events []string // "floor N" / "hole N" / "topic payload @pos replay"
	msgs   []bridge.Message
}

func (l *feedLog) floor(floor uint64, hole bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kind := "floor"
	if hole {
		kind = "hole"
	}
	l.events = append(l.events, fmt.Sprintf("%s %d", kind, floor))
}

func (l *feedLog) message(m bridge.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := ""
	if m.Replay {
		r = " replay"
	}
	l.events = append(l.events, fmt.Sprintf("%s %s @%d%s", m.Topic, m.Payload, m.Position, r))
	l.msgs = append(l.msgs, m)
}

func (l *feedLog) snapshot() ([]string, []bridge.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events), slices.Clone(l.msgs)
}

func (l *feedLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

func openFeed(t *testing.T, b *jsBed, stream string, l *feedLog) *JetStreamFeed {
	t.Helper()
	f, err := OpenJetStream(context.Background(), JetStreamConfig{
		URLs: b.cluster.NATSURLs(), Stream: stream, OnFloor: l.floor,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// followFeed is openFeed with l subscribed to every message, as a hub
// subscribes before the feed's start.
func followFeed(t *testing.T, b *jsBed, stream string, l *feedLog) *JetStreamFeed {
	t.Helper()
	f := openFeed(t, b, stream, l)
	cancel, err := f.Subscribe("#", l.message)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel) // before Close
	return f
}

// startFeed is followFeed, then the feed's start.
func startFeed(t *testing.T, b *jsBed, stream string, l *feedLog) *JetStreamFeed {
	t.Helper()
	f := followFeed(t, b, stream, l)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestJetStreamFeed runs the feed's tests on one three-node cluster (a
// cluster takes seconds to start), each on its own stream.
func TestJetStreamFeed(t *testing.T) {
	defer func(d time.Duration) { stallCheck = d }(stallCheck)
	stallCheck = 500 * time.Millisecond
	b := newJSBed(t, 3)
	t.Run("SnapshotThenEveryMessage", func(t *testing.T) { testFeedSnapshotThenEveryMessage(t, b) })
	t.Run("MapsTopicsAsTheGateway", func(t *testing.T) { testFeedMapsTopicsAsTheGateway(t, b) })
	t.Run("RefusesUnfitStreams", func(t *testing.T) { testFeedRefusesUnfitStreams(t, b) })
	t.Run("ReportsAHole", func(t *testing.T) { testFeedReportsAHole(t, b) })
	t.Run("FailsWhenTheStreamIsReplaced", func(t *testing.T) { testFeedFailsWhenTheStreamIsReplaced(t, b) })
	t.Run("SurvivesItsNodeDying", func(t *testing.T) { testFeedSurvivesItsNodeDying(t, b) }) // last: kills a node
}

// testFeedSnapshotThenEveryMessage: the feed starts with the last
// message of each subject (Replay, in stream order, after the floor at the
// stream's last sequence), then every new message with consecutive
// positions.
func testFeedSnapshotThenEveryMessage(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "SNAP", Subjects: []string{"nodes.>"}})
	for i, s := range []string{"nodes.a", "nodes.b", "nodes.a", "nodes.b", "nodes.a"} {
		b.publish(t, s, fmt.Sprint(i+1))
	}
	var l feedLog
	f := startFeed(t, b, "SNAP", &l)
	hubtest.Eventually(t, 10*time.Second, func() bool { return l.count() == 2 }, "the snapshot's two subjects")
	b.publish(t, "nodes.c", "6")
	b.publish(t, "nodes.a", "7")
	hubtest.Eventually(t, 10*time.Second, func() bool { return l.count() == 4 }, "two live messages")
	events, _ := l.snapshot()
	want := []string{"floor 5", "nodes/b 4 @4 replay", "nodes/a 5 @5 replay", "nodes/c 6 @6", "nodes/a 7 @7"}
	if !slices.Equal(events, want) {
		t.Fatalf("feed gave\n%q\nwant\n%q", events, want)
	}
	if s := f.Stats(); s.Position != 7 || s.Holes != 0 || f.Ready() != nil {
		t.Fatalf("stats %+v, ready %v", s, f.Ready())
	}
	if f.Epoch() == "" || f.Epoch()[:5] != "SNAP." {
		t.Fatalf("epoch %q: want the stream's name and creation time", f.Epoch())
	}
}

// testFeedMapsTopicsAsTheGateway: messages that devices publish
// through NATS's MQTT gateway reach the feed with the topic they were
// published on, '.' and empty levels included.
func testFeedMapsTopicsAsTheGateway(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "GATEWAY", Subjects: []string{"dev.>"}})
	var l feedLog
	f := openFeed(t, b, "GATEWAY", &l)
	cancel, _ := f.Subscribe("dev/#", l.message)
	defer cancel()
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// What the gateway makes of them, seen by a NATS subscriber.
	subjects := make(chan string, 16)
	sub, err := b.nc.Subscribe("dev.>", func(m *nats.Msg) { subjects <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + b.cluster.Nodes[0].MQTTAddr).SetClientID("device-map").SetAutoReconnect(false)
	dev := paho.NewClient(opts)
	if tok := dev.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	defer dev.Disconnect(0)
	topicsSent := []string{"dev/a.b", "dev//x", "dev/x/", "dev/v1.2/temp", "dev/plain"}
	for _, topic := range topicsSent {
		if tok := dev.Publish(topic, 1, false, topic); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return l.count() == len(topicsSent) }, "every topic through the feed")
	_, msgs := l.snapshot()
	for i, m := range msgs {
		if m.Topic != topicsSent[i] || string(m.Payload) != topicsSent[i] {
			t.Errorf("message %d: topic %q payload %q, want %q", i, m.Topic, m.Payload, topicsSent[i])
		}
	}
	for _, topic := range topicsSent {
		select {
		case s := <-subjects:
			if s != topicToSubject(topic) {
				t.Errorf("the gateway published %q on %q; topicToSubject says %q", topic, s, topicToSubject(topic))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the NATS subscriber missed a message")
		}
	}
}

// testFeedRefusesUnfitStreams: a stream that deletes messages in
// its middle is refused at the start, with the reason.
func testFeedRefusesUnfitStreams(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "LASTONLY", Subjects: []string{"lastonly.>"}, MaxMsgsPerSubject: 1})
	b.createStream(t, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy})
	for _, name := range []string{"LASTONLY", "WORK"} {
		_, err := OpenJetStream(context.Background(), JetStreamConfig{URLs: b.cluster.NATSURLs(), Stream: name,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if !errors.Is(err, ErrStreamUnfit) {
			t.Errorf("stream %s: %v, want ErrStreamUnfit", name, err)
		}
	}
	_, err := OpenJetStream(context.Background(), JetStreamConfig{URLs: b.cluster.NATSURLs(), Stream: "NONE",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		t.Error("a stream that does not exist was accepted")
	}
	if _, err := OpenJetStream(context.Background(), JetStreamConfig{URLs: []string{"mqtt://127.0.0.1:1"}, Stream: "X"}); err == nil {
		t.Error("an mqtt:// URL was taken for NATS")
	}
}

// testFeedReportsAHole: while the feed's reader is held up, the
// stream (MaxMsgs 5) drops messages it had not read; the feed reports the
// hole once, before the first message after it, and goes on with
// consecutive positions.
func testFeedReportsAHole(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"s.>"}, MaxMsgs: 5})
	var l feedLog
	f := openFeed(t, b, "SMALL", &l)
	release := make(chan struct{})
	var once sync.Once
	cancel, _ := f.Subscribe("#", func(m bridge.Message) {
		once.Do(func() { <-release }) // holds the feed's reader on the first message
		l.message(m)
	})
	defer cancel()
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.publish(t, "s.x", "first")
	const n = 3000 // more than nats.go pulls ahead (500) and the stream keeps
	var last uint64
	for i := range n {
		last = b.publish(t, "s.x", fmt.Sprint(i))
	}
	close(release)
	hubtest.Eventually(t, 20*time.Second, func() bool { return f.Stats().Position == last }, "the feed reaches the stream's end")
	events, _ := l.snapshot()
	// Every jump in the positions, and only a jump, comes right after its
	// hole, which names the position before the message after it.
	var prev uint64
	holes := 0
	for i, e := range events[1:] { // after "floor 0"
		var pos, floor uint64
		if n, _ := fmt.Sscanf(e, "hole %d", &floor); n == 1 {
			holes++
			if i+2 >= len(events) {
				t.Fatalf("hole %d reported after the last message", floor)
			}
			continue
		}
		if _, err := fmt.Sscanf(e[strings.LastIndexByte(e, '@'):], "@%d", &pos); err != nil {
			t.Fatalf("event %q: %v", e, err)
		}
		hole := i > 0 && strings.HasPrefix(events[i], "hole ")
		switch {
		case hole && events[i] != fmt.Sprintf("hole %d", pos-1):
			t.Fatalf("%s before the message at %d", events[i], pos)
		case !hole && prev != 0 && pos != prev+1:
			t.Fatalf("positions %d then %d without a hole", prev, pos)
		case hole && pos == prev+1:
			t.Fatalf("a hole reported before %d, right after %d", pos, prev)
		}
		prev = pos
	}
	if holes == 0 || f.Stats().Holes != uint64(holes) {
		t.Fatalf("%d holes reported, %d counted; want at least one (the stream keeps 5 of %d)", holes, f.Stats().Holes, n)
	}
}

// testFeedSurvivesItsNodeDying: the node the feed reads through is killed
// while messages keep coming (a stream with a replica on every node); the
// feed reconnects to another node, its consumer is made again from where it
// was, and it goes on with every message: no hole, no duplicate, the same
// epoch, ready again.
func testFeedSurvivesItsNodeDying(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
	var l feedLog
	f := startFeed(t, b, "R3", &l)
	epoch := f.Epoch()
	// The test publishes through a node the feed does not use.
	feedNode := slices.IndexFunc(b.cluster.Nodes, func(n *natstest.Node) bool { return "nats://"+n.NATSAddr == f.nc.ConnectedUrl() })
	if feedNode < 0 {
		t.Fatalf("the feed is connected to %s, no node of the cluster", f.nc.ConnectedUrl())
	}
	pubNode := (feedNode + 1) % len(b.cluster.Nodes)
	nc, err := nats.Connect(b.cluster.Nodes[pubNode].NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	publish := func(i int) uint64 {
		t.Helper()
		var seq uint64
		hubtest.EventuallyNil(t, 30*time.Second, func() error { // the stream elects a new leader when its node dies
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ack, err := js.Publish(ctx, "r3.counter", []byte(fmt.Sprint(i)), jetstream.WithMsgID(fmt.Sprint(i)))
			if err == nil {
				seq = ack.Sequence
			}
			return err
		})
		return seq
	}
	for i := 1; i <= 20; i++ {
		publish(i)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return l.count() == 20 }, "the first 20 messages")
	b.cluster.Kill(feedNode)
	var last uint64
	for i := 21; i <= 60; i++ {
		last = publish(i)
	}
	hubtest.Eventually(t, 60*time.Second, func() bool { return f.Stats().Position == last }, "the feed reaches %d after its node died", last)
	_, msgs := l.snapshot()
	for i, m := range msgs {
		if m.Position != uint64(i+1) || string(m.Payload) != fmt.Sprint(i+1) {
			t.Fatalf("message %d: position %d payload %s; want %d", i, m.Position, m.Payload, i+1)
		}
	}
	if f.Stats().Holes != 0 || f.Epoch() != epoch {
		t.Fatalf("holes %d, epoch %s (was %s)", f.Stats().Holes, f.Epoch(), epoch)
	}
	hubtest.EventuallyNil(t, 30*time.Second, f.Ready)
}

// testFeedFailsWhenTheStreamIsReplaced: a stream deleted and created again
// under the same name is not the one the feed's epoch names: the feed
// says so (not ready, ErrStreamReplaced) and takes none of its messages.
func testFeedFailsWhenTheStreamIsReplaced(t *testing.T, b *jsBed) {
	b.createStream(t, jetstream.StreamConfig{Name: "AGAIN", Subjects: []string{"again.>"}})
	var l feedLog
	f := startFeed(t, b, "AGAIN", &l)
	b.publish(t, "again.x", "1")
	hubtest.Eventually(t, 10*time.Second, func() bool { return l.count() == 1 }, "the first message")
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	if err := b.js.DeleteStream(ctx, "AGAIN"); err != nil {
		t.Fatal(err)
	}
	b.createStream(t, jetstream.StreamConfig{Name: "AGAIN", Subjects: []string{"again.>"}})
	for i := range 3 {
		b.publish(t, "again.x", fmt.Sprint("new", i))
	}
	hubtest.Eventually(t, 20*time.Second, func() bool { return errors.Is(f.Ready(), ErrStreamReplaced) }, "the feed notices the new stream")
	if _, msgs := l.snapshot(); len(msgs) != 1 {
		t.Fatalf("the feed handed on %d messages, want only the old stream's one: %+v", len(msgs), msgs)
	}
}
