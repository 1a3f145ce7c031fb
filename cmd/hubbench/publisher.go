package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// benchPublisher is the device side of a run: it publishes bench payloads
// at a steady rate (run), is kept alive (ping) and closed.
type benchPublisher interface {
	run(ctx context.Context, topic string, rate float64, size int, start, end, windowFrom, windowTo time.Time) (pubStats, error)
	ping() error
	close()
}

// publisher is one TCP connection that publishes bench payloads at a steady
// rate: MQTT 3.1.1 at QoS 0 (dialPublisher), or NATS (dialNATSPublisher).
type publisher struct {
	conn      net.Conn
	bw        *bufio.Writer
	wmu       sync.Mutex    // the pacing loop and the pinger both write
	done      chan struct{} // closed when the reader returns
	encode    func(dst []byte, topic string, payload []byte) []byte
	keepAlive []byte // MQTT PINGREQ, NATS PING
	goodbye   []byte // MQTT DISCONNECT; none for NATS
}

// pubStats is what the publisher sent. Sequence numbers start at 1.
type pubStats struct {
	Sent        uint64 // messages written
	Behind      uint64 // messages due by the end that were never sent
	WindowFirst uint64 // first sequence number sent inside the window (0: none)
	WindowLast  uint64 // last sequence number sent inside the window
}

// pacingTick is how often the pacing loop wakes up to send what is due.
const pacingTick = time.Millisecond

func dialPublisher(ctx context.Context, addr, clientID string) (*publisher, error) {
	conn, err := dialLoopback(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(appendConnect(nil, clientID, mqttKeepAlive)); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("publisher: send CONNECT: %w", err)
	}
	dec := newMQTTDecoder(1 << 16)
	buf := make([]byte, 256)
	for {
		pk, ok, err := dec.Next()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("publisher: %w", err)
		}
		if ok {
			if pk.Type != mqttConnack || pk.Codes[1] != 0 {
				_ = conn.Close()
				return nil, fmt.Errorf("publisher: %w: CONNECT answered with packet type %d %v", errMQTTRefused, pk.Type, pk.Codes)
			}
			break
		}
		n, err := conn.Read(buf)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("publisher: wait for CONNACK: %w", err)
		}
		dec.Write(buf[:n])
	}
	_ = conn.SetDeadline(time.Time{})
	p := &publisher{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), done: make(chan struct{}),
		encode: appendPublish, keepAlive: appendPingreq(nil), goodbye: appendDisconnect(nil)}
	go p.discard()
	return p, nil
}

// discard reads and drops what the broker sends (PINGRESP), so that its
// writes never block; it ends when the connection closes.
func (p *publisher) discard() {
	defer close(p.done)
	_, _ = io.Copy(io.Discard, p.conn) // ends with the connection; nothing to report
}

// run publishes rate messages per second on topic from start until end
// (wall clock), with payloads of size bytes. Messages sent inside
// [windowFrom, windowTo) are counted in the window. It returns at end, or
// when ctx ends or a write fails.
func (p *publisher) run(ctx context.Context, topic string, rate float64, size int, start, end, windowFrom, windowTo time.Time) (pubStats, error) {
	buf := make([]byte, 0, 256)
	payload := make([]byte, 0, size+32)
	emit := func(seq uint64, sentNs int64) (bool, error) {
		payload = appendBenchPayload(payload[:0], seq, sentNs, size)
		buf = p.encode(buf[:0], topic, payload)
		if _, err := p.bw.Write(buf); err != nil {
			return false, fmt.Errorf("publisher: %w", err)
		}
		return true, nil
	}
	flush := func() error {
		_ = p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := p.bw.Flush(); err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
		return nil
	}
	return pace(ctx, rate, start, end, windowFrom, windowTo, &p.wmu, emit, flush)
}

// pace is the pacing loop every publisher shares: from start until end it
// wakes every pacingTick and emits the messages due (sequence numbers from
// 1, stamped with the time they are emitted), at most 50 ticks' worth at
// once, then flushes. emit may refuse a message (false: it cannot take
// more now); the loop tries again on the next tick, and messages still due
// at the end count as Behind. lock, if not nil, is held while emitting and
// flushing.
func pace(ctx context.Context, rate float64, start, end, windowFrom, windowTo time.Time, lock sync.Locker,
	emit func(seq uint64, sentNs int64) (bool, error), flush func() error) (pubStats, error) {
	var st pubStats
	if rate <= 0 {
		return st, errors.New("publisher: rate must be positive")
	}
	if lock == nil {
		lock = noLock{}
	}
	total := uint64(rate * end.Sub(start).Seconds())
	maxBurst := uint64(max(rate*pacingTick.Seconds()*50, 64)) // catch up at most 50 ticks at once
	if d := time.Until(start); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return st, ctx.Err()
		}
	}
	tick := time.NewTicker(pacingTick)
	defer tick.Stop()
	fromNs, toNs := windowFrom.UnixNano(), windowTo.UnixNano()
	for st.Sent < total {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		due := min(uint64(rate*now.Sub(start).Seconds())+1, total)
		lock.Lock()
		for burst := uint64(0); st.Sent < due && burst < maxBurst; burst++ {
			sentNs := time.Now().UnixNano()
			ok, err := emit(st.Sent+1, sentNs)
			if err != nil {
				lock.Unlock()
				return st, err
			}
			if !ok {
				break
			}
			st.Sent++
			if sentNs >= fromNs && sentNs < toNs {
				if st.WindowFirst == 0 {
					st.WindowFirst = st.Sent
				}
				st.WindowLast = st.Sent
			}
		}
		err := flush()
		lock.Unlock()
		if err != nil {
			return st, err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
	due := min(uint64(rate*end.Sub(start).Seconds()), total)
	if st.Sent < due {
		st.Behind = due - st.Sent
	}
	return st, nil
}

// noLock is a sync.Locker for a loop nothing else writes beside.
type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

// ping sends a keep-alive (MQTT PINGREQ, NATS PING).
func (p *publisher) ping() error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.bw.Write(p.keepAlive); err != nil {
		return err
	}
	return p.bw.Flush()
}

// close says goodbye (MQTT DISCONNECT), closes the connection and waits
// for the reader.
func (p *publisher) close() {
	p.wmu.Lock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = p.bw.Write(p.goodbye)
	_ = p.bw.Flush()
	p.wmu.Unlock()
	_ = p.conn.Close()
	<-p.done
}
