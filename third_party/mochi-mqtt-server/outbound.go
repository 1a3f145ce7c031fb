// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co

package mqtt

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/mempool"
	"github.com/mochi-mqtt/server/v2/packets"
)

// outbound is a client's queue of packets waiting to be written to it
// (messages for its subscriptions), and the state of its writer: a
// goroutine that runs only while the queue holds something, started by the
// first packet queued and ending once it has written the last. An idle
// client has neither a writer goroutine nor a queue buffer.
//
// pending, the packets queued or taken by the writer and not yet written,
// is bounded by Capabilities.MaximumClientWritesPending: past it a packet
// is refused (and the caller drops it) or waits for room.
type outbound struct {
	mu      sync.Mutex
	queue   []*packets.Packet // waiting, oldest at head; nil while empty; within twice the most that waited at once (push)
	head    int               // the oldest waiting packet's index in queue
	pending int               // waiting, or taken by the writer and not yet written
	writing bool              // a writer goroutine runs
	room    chan struct{}     // made by a packet waiting for room, closed when pending falls
}

// push queues pk unless limit packets are pending. start says that no
// writer runs: the caller must start one.
func (q *outbound) push(pk *packets.Packet, limit int) (ok, start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending >= max(limit, 1) {
		return false, false
	}
	if q.head > 0 && len(q.queue) == cap(q.queue) {
		// The packets taken go before append would grow the buffer: a
		// writer that never finds the queue empty (so never lets the buffer
		// go) keeps one within twice what waits, not one packet per packet
		// ever queued.
		n := copy(q.queue, q.queue[q.head:])
		clear(q.queue[n:])
		q.queue, q.head = q.queue[:n], 0
	}
	q.queue = append(q.queue, pk)
	q.pending++
	start = !q.writing
	q.writing = true
	return true, start
}

// roomOrWait returns nil when a packet would fit under limit now, or a
// channel closed when one might.
func (q *outbound) roomOrWait(limit int) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending < max(limit, 1) {
		return nil
	}
	if q.room == nil {
		q.room = make(chan struct{})
	}
	return q.room
}

// pop takes the oldest waiting packet, or nil when none waits. The packet
// stays pending until written.
func (q *outbound) pop() *packets.Packet {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.queue) {
		return nil
	}
	pk := q.queue[q.head]
	q.queue[q.head] = nil
	q.head++
	return pk
}

// written counts n packets taken by the writer as no longer pending, and
// wakes packets waiting for room.
func (q *outbound) written(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending -= n
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// stop ends the writer's turn, releasing the queue's buffer, unless a
// packet came meanwhile (the writer then goes on).
func (q *outbound) stop() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head != len(q.queue) {
		return false
	}
	q.queue, q.head, q.writing = nil, 0, false
	return true
}

// drop forgets every waiting packet and ends the writer's turn: its client
// is closed.
func (q *outbound) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending -= len(q.queue) - q.head
	q.queue, q.head, q.writing = nil, 0, false
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// len is the number of packets pending.
func (q *outbound) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending
}

// PendingWrites is how many packets wait to be written to cl now (queued,
// or taken by its writer and not yet written): at most
// Capabilities.MaximumClientWritesPending. For an admin's view of the client.
func (cl *Client) PendingWrites() int { return cl.State.outbound.len() }

// enqueue queues pk for cl's writer, starting one if none runs. It returns
// false, queuing nothing, when MaximumClientWritesPending packets are
// pending already.
func (cl *Client) enqueue(pk *packets.Packet) bool {
	ok, start := cl.State.outbound.push(pk, int(cl.ops.options.Capabilities.MaximumClientWritesPending))
	if start {
		go cl.writeOutbound()
	}
	return ok
}

// enqueueWait is enqueue, waiting for room while the queue is full. It
// returns false when cl closes first.
func (cl *Client) enqueueWait(pk *packets.Packet) bool {
	limit := int(cl.ops.options.Capabilities.MaximumClientWritesPending)
	for {
		if cl.Closed() {
			return false
		}
		room := cl.State.outbound.roomOrWait(limit)
		if room == nil && cl.enqueue(pk) {
			return true
		}
		if room == nil {
			continue // taken meanwhile by another: ask again
		}
		select {
		case <-room:
		case <-cl.State.open.Done():
			return false
		}
	}
}

// writeOutbound is cl's writer: it writes the queued packets in order,
// encoded together into writes of about ClientNetWriteBufferSize bytes (a
// write goes as soon as the queue is empty), and returns once the queue is
// empty, or cl closed.
func (cl *Client) writeOutbound() {
	q := &cl.State.outbound
	buf := mempool.GetBuffer()
	defer mempool.PutBuffer(buf)
	var batch sentBatch
	batch.keep = cl.ops.hooks.Provides(OnPacketSent)
	taken := 0 // packets taken from the queue since the last write
	for {
		if cl.Closed() {
			q.written(taken)
			q.drop()
			return
		}
		if pk := q.pop(); pk != nil {
			taken++
			start := buf.Len()
			out, err := cl.encodePacket(*pk, buf)
			if err != nil {
				buf.Truncate(start)
				cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
			} else {
				batch.add(out, buf.Len())
			}
			if buf.Len() < cl.ops.options.ClientNetWriteBufferSize {
				continue
			}
		}
		if taken > 0 {
			if err := cl.writeBatch(buf, &batch); err != nil {
				cl.ops.log.Debug("failed publishing packets", "error", err, "client", cl.ID, "packets", taken)
			}
			q.written(taken)
			taken = 0
			buf.Reset()
			batch.reset()
			continue
		}
		if q.stop() {
			return
		}
	}
}

// sentBatch is what a write carries, for the counters and OnPacketSent.
type sentBatch struct {
	count, publishes int
	keep             bool         // keep the packets: a hook wants them
	packets          []sentPacket // when keep; at most one write's, so at most MaximumClientWritesPending
}

// sentPacket is one packet of a write, and where its bytes end.
type sentPacket struct {
	pk  packets.Packet
	end int
}

func (b *sentBatch) add(pk packets.Packet, end int) {
	b.count++
	if pk.FixedHeader.Type == packets.Publish {
		b.publishes++
	}
	if b.keep {
		b.packets = append(b.packets, sentPacket{pk: pk, end: end})
	}
}

func (b *sentBatch) reset() {
	b.count, b.publishes = 0, 0
	clear(b.packets)
	b.packets = b.packets[:0]
}

// writeBatch writes the packets encoded in buf and counts them.
func (cl *Client) writeBatch(buf *bytes.Buffer, batch *sentBatch) error {
	if buf.Len() == 0 {
		return nil
	}
	b := buf.Bytes()
	if err := cl.writeBytes(b); err != nil {
		return err
	}
	atomic.AddInt64(&cl.ops.info.BytesSent, int64(len(b)))
	atomic.AddInt64(&cl.ops.info.PacketsSent, int64(batch.count))
	atomic.AddInt64(&cl.ops.info.MessagesSent, int64(batch.publishes))
	start := 0
	for _, s := range batch.packets {
		cl.ops.hooks.OnPacketSent(cl, s.pk, b[start:s.end])
		start = s.end
	}
	return nil
}
