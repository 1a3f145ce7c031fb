package main

import (
	"context"
	"fmt"
	"math/bits"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A fleet of MQTT devices: one TCP connection each, each publishing QoS 0
// bench payloads to its own topic. A few sender goroutines pace them (each
// owns a slice of the devices and writes to them in turn), so that 2,000
// devices cost 2,000 sockets and no goroutine each.

// device is one MQTT connection, written to by its sender only.
type device struct {
	conn  net.Conn
	topic string
	dead  bool // a write failed; the device is skipped from then on
}

// dialDevice connects one device (CONNECT, CONNACK) without reading anything
// after that: the broker sends a QoS 0 publisher nothing it must read.
func dialDevice(ctx context.Context, addr, clientID, topic string) (*device, error) {
	conn, err := dialLoopback(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(appendConnect(nil, clientID, mqttKeepAlive)); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("device: send CONNECT: %w", err)
	}
	dec := newMQTTDecoder(1 << 10)
	buf := make([]byte, 64)
	for {
		pk, ok, err := dec.Next()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("device: %w", err)
		}
		if ok {
			if pk.Type != mqttConnack || pk.Codes[1] != 0 {
				_ = conn.Close()
				return nil, fmt.Errorf("device: %w: CONNECT answered with packet type %d %v", errMQTTRefused, pk.Type, pk.Codes)
			}
			break
		}
		n, err := conn.Read(buf)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("device: wait for CONNACK: %w", err)
		}
		dec.Write(buf[:n])
	}
	_ = conn.SetDeadline(time.Time{})
	return &device{conn: conn, topic: topic}, nil
}

// fleet is every device of a run and the messages they sent.
type fleet struct {
	devices []*device // nil where the connect failed
	seq     atomic.Uint64
	// window has bit s set when message s was sent inside the measured
	// window; it is bounded by maxSeq, the most messages the run can send.
	window []atomic.Uint64
	maxSeq uint64
	errors atomic.Int64 // devices whose write failed
	behind atomic.Uint64
}

// connectFleet dials n devices, parallel at a time; device i publishes to
// fmt.Sprintf(topics, i).
func connectFleet(ctx context.Context, addr, topics string, n, parallel int) (*fleet, int, error) {
	f := &fleet{devices: make([]*device, n)}
	idx := make(chan int)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	base := "hubbench-dev-" + strconv.Itoa(os.Getpid()) + "-"
	for range max(1, parallel) {
		wg.Go(func() {
			for i := range idx {
				cctx, cancel := context.WithTimeout(ctx, connectTimeout)
				d, err := dialDevice(cctx, addr, base+strconv.Itoa(i), fmt.Sprintf(topics, i))
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				f.devices[i] = d
			}
		})
	}
feed:
	for i := range n {
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	var err error
	if e, ok := firstErr.Load().(error); ok {
		err = e
	}
	if ctx.Err() != nil {
		f.close()
		return nil, 0, fmt.Errorf("connect devices: %w", ctx.Err())
	}
	return f, n - int(failed.Load()), err
}

// close sends DISCONNECT on every device and closes it.
func (f *fleet) close() {
	bye := appendDisconnect(nil)
	for _, d := range f.devices {
		if d != nil {
			_ = d.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = d.conn.Write(bye)
			_ = d.conn.Close()
		}
	}
}

// inWindow reports whether message s was sent inside the measured window.
func (f *fleet) inWindow(s uint64) bool {
	w := s / 64
	return w < uint64(len(f.window)) && f.window[w].Load()&(1<<(s%64)) != 0
}

// countWindow is how many messages were sent inside the window.
func (f *fleet) countWindow() uint64 {
	var n uint64
	for i := range f.window {
		n += uint64(bits.OnesCount64(f.window[i].Load()))
	}
	return n
}

// deliveredIn is how many window messages the tracker received.
func (f *fleet) deliveredIn(t *seqTracker) uint64 {
	var n uint64
	for i, w := range t.bits {
		if i >= len(f.window) {
			break
		}
		n += uint64(bits.OnesCount64(w & f.window[i].Load()))
	}
	return n
}

// publish runs senders goroutines that together send rate messages a second
// from start until end, device after device, and returns when they are
// done. Sequence numbers are global (one counter), starting at 1.
func (f *fleet) publish(ctx context.Context, senders int, rate float64, size int, start, end, from, to time.Time) {
	live := make([]*device, 0, len(f.devices))
	for _, d := range f.devices {
		if d != nil {
			live = append(live, d)
		}
	}
	f.maxSeq = uint64(rate*end.Sub(start).Seconds()) + 1024
	f.window = make([]atomic.Uint64, f.maxSeq/64+1)
	senders = max(1, min(senders, len(live)))
	var wg sync.WaitGroup
	for i := range senders {
		share := live[i*len(live)/senders : (i+1)*len(live)/senders]
		r := rate * float64(len(share)) / float64(len(live))
		wg.Go(func() { f.send(ctx, share, r, size, start, end, from, to) })
	}
	wg.Wait()
}

// send paces one sender: r messages a second over share, in turn.
func (f *fleet) send(ctx context.Context, share []*device, r float64, size int, start, end, from, to time.Time) {
	if len(share) == 0 || r <= 0 {
		return
	}
	total := uint64(r * end.Sub(start).Seconds())
	maxBurst := uint64(max(r*pacingTick.Seconds()*50, 64))
	pkt := make([]byte, 0, size+128)
	payload := make([]byte, 0, size+32)
	for _, d := range share {
		_ = d.conn.SetWriteDeadline(end.Add(10 * time.Second))
	}
	sleepUntil(ctx, start)
	tick := time.NewTicker(pacingTick)
	defer tick.Stop()
	fromNs, toNs := from.UnixNano(), to.UnixNano()
	var sent uint64
	next := 0
	for sent < total && ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		due := min(uint64(r*now.Sub(start).Seconds())+1, total)
		for burst := uint64(0); sent < due && burst < maxBurst; burst++ {
			d := share[next]
			next = (next + 1) % len(share)
			if d.dead {
				sent++ // its messages are lost, not late
				continue
			}
			s := f.seq.Add(1)
			if s > f.maxSeq {
				return
			}
			sentNs := time.Now().UnixNano()
			payload = appendBenchPayload(payload[:0], s, sentNs, size)
			pkt = appendPublish(pkt[:0], d.topic, payload)
			if _, err := d.conn.Write(pkt); err != nil {
				d.dead = true
				f.errors.Add(1)
			}
			sent++
			if sentNs >= fromNs && sentNs < toNs {
				f.window[s/64].Or(1 << (s % 64))
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	if due := min(uint64(r*end.Sub(start).Seconds()), total); sent < due {
		f.behind.Add(due - sent)
	}
}
