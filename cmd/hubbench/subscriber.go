package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Transports a subscriber can speak.
const (
	transportWS      = "ws"       // motehub Clown.Talk over WebSocket, one line per frame
	transportWSBatch = "ws-batch" // the same with "batch": true
	transportSSE     = "sse"      // motehub Server-Sent Events
	transportMQTTWS  = "mqtt-ws"  // MQTT 3.1.1 over WebSocket (Mosquitto, as MQTT.js)
	transportCentWS  = "cent-ws"  // Centrifugo's JSON protocol over WebSocket (as centrifuge-js)
	transportNATSWS  = "nats-ws"  // NATS text protocol over WebSocket (as nats.ws)
	transportMQTTTCP = "mqtt-tcp" // an MQTT 3.1.1 device on TCP with one subscription of its own
)

// subscriber is one browser-like client. connect returns it subscribed;
// read then runs on its own goroutine until the connection ends; ping and
// close may be called from other goroutines.
type subscriber interface {
	read() error
	ping() error
	close()
}

// sink is where every subscriber reports what it receives.
type sink struct {
	lat      *latencies
	messages atomic.Uint64 // bench messages received by all subscribers, any time
	others   atomic.Uint64 // lines or packets that were not bench messages
}

// drain waits for messages still on their way: until nothing arrives for
// 500 ms, or maxDrain.
func (s *sink) drain(ctx context.Context, maxDrain time.Duration) {
	deadline := time.Now().Add(maxDrain)
	last, quiet := s.messages.Load(), time.Now()
	for time.Now().Before(deadline) && time.Since(quiet) < 500*time.Millisecond && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		if n := s.messages.Load(); n != last {
			last, quiet = n, time.Now()
		}
	}
}

// subState is what one subscriber learned; it belongs to its reader.
type subState struct {
	index int
	seq   *seqTracker
	sink  *sink
}

// got handles one bench payload (or any text holding one).
func (s *subState) got(b []byte) {
	seq, sent, ok := scanSeqTime(b)
	if !ok {
		s.sink.others.Add(1)
		return
	}
	now := time.Now().UnixNano()
	s.seq.add(seq)
	s.sink.lat.record(s.index, sent, now)
	s.sink.messages.Add(1)
}

// connectSubscriber dials one subscriber of the given transport at url,
// subscribed to filter, and returns once the subscription is confirmed.
func connectSubscriber(ctx context.Context, transport, url, filter string, st *subState) (subscriber, error) {
	switch transport {
	case transportWS, transportWSBatch:
		return connectClown(ctx, url, clownConfig{Subscribe: []string{filter}, Batch: transport == transportWSBatch}, 16<<10, st)
	case transportSSE:
		return connectSSE(ctx, url, st)
	case transportMQTTWS:
		return connectMQTTWS(ctx, url, filter, fmt.Sprintf("hubbench-%d", st.index), st)
	case transportCentWS:
		return connectCentrifugo(ctx, url, st)
	case transportNATSWS:
		return connectNATSWS(ctx, url, st)
	case transportMQTTTCP:
		return connectMQTTTCP(ctx, url, deviceFilter(st.index), fmt.Sprintf("hubbench-dev-%d", st.index), st)
	}
	return nil, fmt.Errorf("hubbench: unknown transport %q", transport)
}
