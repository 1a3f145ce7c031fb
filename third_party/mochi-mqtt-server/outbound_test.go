// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co

package mqtt

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// writerRunning reports whether cl has a writer goroutine now.
func writerRunning(cl *Client) bool {
	cl.State.outbound.mu.Lock()
	defer cl.State.outbound.mu.Unlock()
	return cl.State.outbound.writing
}

// requireWriterEnds waits (with a deadline) for cl's writer to end.
func requireWriterEnds(t *testing.T, cl *Client) {
	t.Helper()
	require.Eventually(t, func() bool { return !writerRunning(cl) }, 5*time.Second, time.Millisecond, "the writer goroutine did not end")
}

// readPublishes reads n QoS 0 PUBLISH packets of MQTT 3.1.1 from r and
// returns their payloads.
func readPublishes(t *testing.T, r io.Reader, n int) []string {
	t.Helper()
	br := bufio.NewReader(r)
	var got []string
	for j := 0; j < n; j++ {
		var fh packets.FixedHeader
		b, err := br.ReadByte()
		require.NoError(t, err)
		require.NoError(t, fh.Decode(b))
		fh.Remaining, _, err = packets.DecodeLength(br)
		require.NoError(t, err)
		body := make([]byte, fh.Remaining)
		_, err = io.ReadFull(br, body)
		require.NoError(t, err)
		pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 4}
		require.NoError(t, pk.PublishDecode(body))
		got = append(got, string(pk.Payload))
	}
	return got
}

func publishOf(i int) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   "a/b",
		Payload:     []byte(strconv.Itoa(i)),
	}
}

// A client has no writer goroutine until a packet is queued for it, and
// none once the packet is written; the queue's buffer goes with it.
func TestOutboundWriterRunsOnlyWhileThereIsSomethingToWrite(t *testing.T) {
	s := newServer()
	cl, r, w := newTestClient()
	defer w.Close()
	cl.Properties.ProtocolVersion = 4
	require.False(t, writerRunning(cl))

	_, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b"}, publishOf(1))
	require.NoError(t, err)
	require.Equal(t, []string{"1"}, readPublishes(t, r, 1))
	requireWriterEnds(t, cl)
	require.Nil(t, cl.State.outbound.queue, "the queue's buffer is released when it empties")
	require.Equal(t, 0, cl.State.outbound.len())

	_, err = s.publishToClient(cl, packets.Subscription{Filter: "a/b"}, publishOf(2)) // a new writer for the next one
	require.NoError(t, err)
	require.Equal(t, []string{"2"}, readPublishes(t, r, 1))
	requireWriterEnds(t, cl)
}

// Packets reach the client in the order they were queued, whoever queued
// them.
func TestOutboundKeepsOrder(t *testing.T) {
	s := newServer()
	cl, r, w := newTestClient()
	defer w.Close()
	cl.Properties.ProtocolVersion = 4
	cl.ops.options.Capabilities.MaximumClientWritesPending = 1000
	const n = 500
	got := make(chan []string, 1)
	go func() { got <- readPublishes(t, r, n) }()
	var want []string
	for i := 0; i < n; i++ {
		_, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b"}, publishOf(i))
		require.NoError(t, err)
		want = append(want, strconv.Itoa(i))
	}
	require.Equal(t, want, <-got)
	requireWriterEnds(t, cl)
}

// A client that stops reading holds at most MaximumClientWritesPending
// packets (the one its writer is stuck writing among them); the rest are
// dropped and counted, as before the writer was started on demand. When
// its connection closes, the writer ends and the queue is let go.
func TestOutboundBoundsAClientThatStopsReading(t *testing.T) {
	s := newServer()
	cl, _, w := newTestClient() // nobody reads: the first write blocks
	cl.Properties.ProtocolVersion = 4
	const limit, extra = 3, 5
	cl.ops.options.Capabilities.MaximumClientWritesPending = limit
	for i := 0; i < limit+extra; i++ {
		_, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b"}, publishOf(i))
		if i < limit {
			require.NoError(t, err, "packet %d", i)
		} else {
			require.ErrorIs(t, err, packets.ErrPendingClientWritesExceeded, "packet %d", i)
		}
	}
	require.Equal(t, limit, cl.State.outbound.len())
	require.Equal(t, limit, cl.PendingWrites(), "what an admin sees waiting")
	require.Equal(t, int64(extra), atomic.LoadInt64(&s.Info.MessagesDropped))
	require.True(t, writerRunning(cl))

	cl.Stop(errClientStop)
	_ = w.Close()
	requireWriterEnds(t, cl)
	require.Equal(t, 0, cl.State.outbound.len())
	require.Equal(t, 0, cl.PendingWrites())
	require.Nil(t, cl.State.outbound.queue)
}

// Packets queued while the writer is busy go out together, in writes of
// about ClientNetWriteBufferSize bytes, each with its OnPacketSent.
func TestOutboundWritesQueuedPacketsTogether(t *testing.T) {
	cl, r, w := newTestClient()
	defer w.Close()
	cl.Properties.ProtocolVersion = 4
	sent := new(sentRecorder)
	require.NoError(t, cl.ops.hooks.Add(sent, nil))
	cl.ops.options.ClientNetWriteBufferSize = 15 // one 8-byte packet, then a second: past it
	q := &cl.State.outbound
	q.writing = true // as if a writer were busy: the packets wait together
	for i := 0; i < 3; i++ {
		pk := publishOf(i)
		ok, start := q.push(&pk, 10)
		require.True(t, ok)
		require.False(t, start)
	}
	go cl.writeOutbound()

	buf := make([]byte, 100)
	n, err := r.Read(buf) // net.Pipe: one Read sees one Write
	require.NoError(t, err)
	require.Equal(t, 16, n, "the first two packets in one write")
	n, err = r.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 8, n, "the last one in a write of its own")
	requireWriterEnds(t, cl)
	require.Equal(t, int64(24), atomic.LoadInt64(&cl.ops.info.BytesSent))
	require.Equal(t, int64(3), atomic.LoadInt64(&cl.ops.info.MessagesSent))
	require.Equal(t, int64(3), sent.count.Load())
	require.Equal(t, int64(24), sent.bytes.Load(), "each OnPacketSent gets its own packet's bytes")
}

// sentRecorder counts what OnPacketSent is told.
type sentRecorder struct {
	HookBase
	count, bytes atomic.Int64
}

func (h *sentRecorder) ID() string { return "sent-recorder" }
func (h *sentRecorder) Provides(b byte) bool {
	return bytes.Contains([]byte{OnPacketSent}, []byte{b})
}
func (h *sentRecorder) OnPacketSent(_ *Client, _ packets.Packet, b []byte) {
	h.count.Add(1)
	h.bytes.Add(int64(len(b)))
}

// A packet waiting for room in a full queue goes once there is room, and
// gives up when its client closes.
func TestOutboundEnqueueWait(t *testing.T) {
	cl, r, w := newTestClient()
	cl.Properties.ProtocolVersion = 4
	cl.ops.options.Capabilities.MaximumClientWritesPending = 1
	first, second, third := publishOf(1), publishOf(2), publishOf(3)
	require.True(t, cl.enqueue(&first)) // the writer blocks writing it: nobody reads yet
	require.False(t, cl.enqueue(&second), "the queue is full")

	queued := make(chan bool, 1)
	go func() { queued <- cl.enqueueWait(&second) }()
	require.Equal(t, []string{"1", "2"}, readPublishes(t, r, 2), "the waiting packet goes once there is room")
	require.True(t, <-queued)
	requireWriterEnds(t, cl)

	ok, start := cl.State.outbound.push(&first, 1) // no writer: it stays
	require.True(t, ok)
	require.True(t, start)
	go func() { queued <- cl.enqueueWait(&third) }()
	cl.Stop(errClientStop)
	_ = w.Close()
	require.False(t, <-queued, "a closed client takes nothing more")
}

// A writer that never finds its queue empty (a packet comes in during
// each of its writes, as to a subscriber of a busy topic for months) never
// lets go of the queue's buffer: the buffer must stay within what is
// waiting, and not grow with every packet ever queued.
func TestOutboundBufferBoundedWhileTheWriterNeverIdles(t *testing.T) {
	const limit, rounds = 8, 100_000
	var q outbound
	pk := publishOf(0)
	ok, start := q.push(&pk, limit)
	require.True(t, ok)
	require.True(t, start)
	for i := 0; i < rounds; i++ {
		require.NotNil(t, q.pop())      // the writer takes one...
		ok, start := q.push(&pk, limit) // ...and the next comes while it writes it
		require.True(t, ok)
		require.False(t, start, "a writer runs")
		q.written(1)
		require.LessOrEqual(t, cap(q.queue), 4*limit, "after %d packets the queue's buffer holds %d slots for %d waiting", i+2, cap(q.queue), len(q.queue)-q.head)
	}
	require.Equal(t, 1, q.len())
}
