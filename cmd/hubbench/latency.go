package main

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencies collects end-to-end latencies in microseconds, for messages sent
// inside the measured window only. It is sharded so that readers on several
// cores seldom wait for each other; each shard has its own mutex.
type latencies struct {
	fromNs, toNs int64 // the measured window, by send time
	shards       []latencyShard
}

type latencyShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep shards on separate cache lines
}

// Latencies are recorded from 1 µs to 10 min with 3 significant digits.
const (
	latencyMinUs = 1
	latencyMaxUs = 600_000_000
)

func newLatencies(shards int, fromNs, toNs int64) *latencies {
	l := &latencies{fromNs: fromNs, toNs: toNs, shards: make([]latencyShard, shards)}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(latencyMinUs, latencyMaxUs, 3)
	}
	return l
}

// record notes a message sent at sentNs and received at nowNs, when it was
// sent inside the window. shard is any number; the subscriber's index will do.
func (l *latencies) record(shard int, sentNs, nowNs int64) {
	if sentNs < l.fromNs || sentNs >= l.toNs {
		return
	}
	us := max((nowNs-sentNs)/1000, latencyMinUs)
	us = min(us, latencyMaxUs)
	s := &l.shards[shard%len(l.shards)]
	s.mu.Lock()
	_ = s.h.RecordValue(us)
	s.mu.Unlock()
}

// merged returns one histogram of everything recorded.
func (l *latencies) merged() *hdrhistogram.Histogram {
	all := hdrhistogram.New(latencyMinUs, latencyMaxUs, 3)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	return all
}
