package mqtt

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestSubscribersOnlyInlineAllocs: finding the subscribers of a topic that
// only an inline subscription matches makes the one map it returns (and the
// Subscribers), no copy of each particle's subscriptions (PATCHES.md 30).
func TestSubscribersOnlyInlineAllocs(t *testing.T) {
	index := NewTopicsIndex()
	index.InlineSubscribe(InlineSubscription{Subscription: packets.Subscription{Filter: "#", Identifier: 1},
		Handler: func(*Client, packets.Subscription, packets.Packet) {}})
	index.Subscribe("cl1", packets.Subscription{Filter: "other/topic"})

	subs := index.Subscribers("dev/17/data")
	require.Len(t, subs.InlineSubscriptions, 1)
	require.Empty(t, subs.Subscriptions)
	require.Empty(t, subs.Shared)

	allocs := testing.AllocsPerRun(100, func() { _ = index.Subscribers("dev/17/data") })
	require.LessOrEqual(t, allocs, 2.0, "the Subscribers and its slice of inline subscriptions")
}

// TestPublishToInlineSubscribersAllocatesNothing: a message that only
// inline subscriptions match (a device's, which the hub takes) is handed to
// them without an allocation: no map, no Subscribers (PATCHES.md 38).
func TestPublishToInlineSubscribersAllocatesNothing(t *testing.T) {
	s := newServerWithInlineClient()
	calls := 0
	count := func(*Client, packets.Subscription, packets.Packet) { calls++ }
	s.Topics.InlineSubscribe(InlineSubscription{Subscription: packets.Subscription{Filter: "#", Identifier: 1}, Handler: count})
	s.Topics.InlineSubscribe(InlineSubscription{Subscription: packets.Subscription{Filter: "dev/+/data", Identifier: 2}, Handler: count})
	s.Topics.Subscribe("cl1", packets.Subscription{Filter: "other/topic"})
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "dev/17/data",
		Payload: []byte("on"), Created: time.Now().Unix()}

	allocs := testing.AllocsPerRun(100, func() { s.publishToSubscribers(pk) })
	require.Zero(t, allocs)
	require.Equal(t, 2*101, calls, "each inline subscription once per message")
}

// TestInlineSubscriptionsOnePerIdentifier: an inline subscription whose
// identifier two matching filters share is called once per message, as
// when they were gathered in a map keyed on it; one per identifier
// otherwise, however many match (PATCHES.md 38).
func TestInlineSubscriptionsOnePerIdentifier(t *testing.T) {
	s := newServerWithInlineClient()
	calls := map[string]int{}
	record := func(_ *Client, sub packets.Subscription, _ packets.Packet) { calls[sub.Filter]++ }
	for i, filter := range []string{"a/b", "a/#", "+/b", "#"} {
		s.Topics.InlineSubscribe(InlineSubscription{Subscription: packets.Subscription{Filter: filter, Identifier: min(i, 2)},
			Handler: record})
	}
	s.publishToSubscribers(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b"})

	total := 0
	for _, n := range calls {
		total += n
	}
	require.Equal(t, 3, total, "identifiers 0, 1 and 2 (on two filters) once each: %v", calls)
	require.Equal(t, 1, calls["a/b"])
	require.Equal(t, 1, calls["a/#"])

	var ids []int
	for _, sub := range s.Topics.Subscribers("a/b").InlineSubscriptions {
		ids = append(ids, sub.Identifier)
	}
	require.ElementsMatch(t, []int{0, 1, 2}, ids)
}

// TestSubscribersSharedStillSelected: with maps made only when needed, a
// shared subscription is still selected and merged (PATCHES.md 30).
func TestSubscribersSharedStillSelected(t *testing.T) {
	index := NewTopicsIndex()
	index.Subscribe("cl1", packets.Subscription{Filter: SharePrefix + "/g/a/#", Qos: 1})
	subs := index.Subscribers("a/b")
	require.Len(t, subs.Shared, 1)
	require.NotNil(t, subs.SharedSelected)
	require.Nil(t, subs.Subscriptions)
	subs.SelectShared()
	subs.MergeSharedSelected()
	require.Contains(t, subs.Subscriptions, "cl1")
}

// deadlineCountConn counts the deadlines set on it.
type deadlineCountConn struct {
	net.Conn
	set  int
	last time.Time
}

func (c *deadlineCountConn) SetDeadline(t time.Time) error {
	c.set++
	c.last = t
	return nil
}

// TestClientRefreshDeadlineLazily: Read moves the deadline on at most once
// per deadlineSlack (and when the keepalive changes), never to earlier than
// a packet read now asks [MQTT-3.1.2-22] (PATCHES.md 30).
func TestClientRefreshDeadlineLazily(t *testing.T) {
	cl, _, _ := newTestClient()
	defer cl.Stop(errClientStop)
	conn := &deadlineCountConn{Conn: cl.Net.Conn}
	cl.Net.Conn = conn

	for i := 0; i < 1000; i++ {
		before := time.Now()
		cl.refreshDeadlineLazily(10)
		require.False(t, conn.last.Before(before.Add(15*time.Second)), "the deadline is earlier than 1.5 × keepalive")
	}
	require.Equal(t, 1, conn.set, "1,000 packets within a second moved the deadline more than once")

	cl.refreshDeadlineLazily(20) // a new keepalive (at CONNECT) applies at once
	require.Equal(t, 2, conn.set)
	require.True(t, conn.last.After(time.Now().Add(29*time.Second)))

	cl.refreshDeadlineLazily(0) // no keepalive: no deadline
	require.Equal(t, 3, conn.set)
	require.True(t, conn.last.IsZero())

	cl.deadlineSet = time.Now().Add(-deadlineSlack) // a second later
	cl.refreshDeadlineLazily(0)
	require.Equal(t, 4, conn.set)
}

// publishPathHook provides the hooks of a PUBLISH's path that the server
// now calls only when a hook provides them, and counts their calls.
type publishPathHook struct {
	HookBase
	read, published, processed atomic.Int32
}

func (h *publishPathHook) ID() string { return "publish-path" }

func (h *publishPathHook) Provides(b byte) bool {
	return b == OnPacketRead || b == OnPublished || b == OnPacketProcessed
}

func (h *publishPathHook) OnPacketRead(_ *Client, pk packets.Packet) (packets.Packet, error) {
	h.read.Add(1)
	pk.Payload = []byte("changed on read")
	return pk, nil
}

func (h *publishPathHook) OnPublished(*Client, packets.Packet) { h.published.Add(1) }

func (h *publishPathHook) OnPacketProcessed(*Client, packets.Packet, error) { h.processed.Add(1) }

// TestPublishPathHooksWhenProvided: OnPacketRead, OnPublished and
// OnPacketProcessed are called, and what OnPacketRead returns is the
// packet handled, when a hook provides them: the server asks before it
// copies the packet for them (PATCHES.md 40).
func TestPublishPathHooksWhenProvided(t *testing.T) {
	s := newServer()
	h := new(publishPathHook)
	require.NoError(t, s.AddHook(h, nil))
	r, w := net.Pipe()
	defer r.Close()
	defer w.Close()
	cl := s.NewClient(r, "tcp", "publisher", false)
	cl.Properties.ProtocolVersion = 4
	cl.State.Inflight.ResetReceiveQuota(10) // as at CONNECT

	go func() { _, _ = w.Write([]byte{0x30, 6, 0, 1, 'a', 'o', 'n', '!'}) }() // QoS 0 PUBLISH "on!" to "a"
	var fh packets.FixedHeader
	require.NoError(t, cl.ReadFixedHeader(&fh))
	pk, err := cl.ReadPacket(&fh)
	require.NoError(t, err)
	require.Equal(t, "changed on read", string(pk.Payload))
	require.NoError(t, s.processPacket(cl, pk))

	require.Equal(t, int32(1), h.read.Load())
	require.Equal(t, int32(1), h.published.Load())
	require.Equal(t, int32(1), h.processed.Load())
}
