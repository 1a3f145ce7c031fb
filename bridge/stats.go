package bridge

import (
	"maps"
	"math/bits"
	"sync/atomic"
	"time"
)

// transport is how a client is connected, as counters tell them apart.
type transport uint8

const (
	transportWS transport = iota
	transportSSE
	transports
)

var transportNames = [transports]string{"ws", "sse"}

// source is where a browser's publish came from.
type source uint8

const (
	sourceWS source = iota
	sourceAPI
	sources
)

var sourceNames = [sources]string{"ws", "api"}

// closeReasons are the reasons a session ends, in the order counters keep them.
var closeReasons = []CloseReason{
	ReasonClientGone, ReasonGoingAway, ReasonSlow, ReasonIdle, ReasonWriteFailed,
	ReasonTooLarge, ReasonFlooding, ReasonRevoked, ReasonInvalidText, ReasonDisconnected,
}

// Stats is a snapshot of the hub's counters, read without stopping it.
type Stats struct {
	Sessions        int64  // sessions open now, all transports
	Received        uint64 // messages taken from the Bus
	Delivered       uint64 // messages queued to clients (one per client per message)
	Published       uint64 // messages browsers published to the Bus
	SlowDisconnects uint64 // sessions closed because their queue overflowed
	// Commands confirmed, and failed by cause: no answer, a different state
	// reported, not published.
	AcksOK, AcksTimeout, AcksDiffer, AcksFailed uint64
	// Commands by outcome: "ok" or the code of the failure ("timeout",
	// "state-differs", "offline", "forbidden", ...; "other").
	Commands map[string]uint64
	// CommandsWaiting is how many commands wait for their devices now (at
	// most Config.MaxPendingCommands per session, 16 times it for HTTP).
	CommandsWaiting int64
	// The device model: devices known now, times its queue overflowed (each
	// followed by a rebuild from the last values) and rebuilds.
	Devices                      int64
	ModelOverflows, ModelRebuilt uint64
	// What the device model refused at its bounds (devices.Config), counted
	// since the hub started, rebuilds included: "devices", "entities",
	// "topics", and discovery payloads "oversized" or "malformed".
	ModelRefused map[string]uint64
	// Refusals: sessions past a limit, requests their user may not make,
	// messages past a client's rate.
	SessionsRefused, Forbidden, RateLimited uint64

	// By transport ("ws", "sse"): sessions open, messages queued, bytes written.
	SessionsBy, DeliveredBy, BytesOutBy map[string]uint64
	// PublishedBy counts browsers' publishes by source ("ws", "api").
	PublishedBy map[string]uint64
	// Closes counts ended sessions by reason ("slow", "going away", ...).
	Closes map[string]uint64
	// Latency is the time from the hub taking a message to writing it to a
	// client's connection.
	Latency LatencyStats
	// BusSubscriptions is how many filters the hub is subscribed to on the Bus.
	BusSubscriptions int
	// A Positional hub's (Config.Positional): messages dropped because their
	// position was not above the last event's, and clients that resumed from
	// an id ahead of the hub and waited for it.
	StalePositions, AheadWaits uint64
}

// LatencyStats is a histogram: Counts[i] messages took at most Bounds[i]
// (and more than Bounds[i-1]); the last bound is infinite.
type LatencyStats struct {
	Bounds []time.Duration
	Counts []uint64
	Sum    time.Duration
	Count  uint64
}

type counters struct {
	sessionsBy  [transports]atomic.Int64
	deliveredBy [transports]atomic.Uint64
	bytesOutBy  [transports]atomic.Uint64
	publishedBy [sources]atomic.Uint64
	closes      [10]atomic.Uint64 // by closeReasons
	received    atomic.Uint64
	slow        atomic.Uint64
	ackOK       atomic.Uint64
	ackTime     atomic.Uint64
	ackDiffer   atomic.Uint64
	ackFailed   atomic.Uint64
	refused     atomic.Uint64
	forbidden   atomic.Uint64
	limited     atomic.Uint64
	latency     histogram
	commands    [len(commandOutcomes)]atomic.Uint64

	stalePositions atomic.Uint64 // positional: messages not above the last position
	aheadWaits     atomic.Uint64 // positional: resumes that waited for an id ahead

	devicesKnown   atomic.Int64
	modelRefused   atomic.Pointer[map[string]uint64] // set by the model worker; read only
	modelOverflows atomic.Uint64
	modelRebuilds  atomic.Uint64
}

func (c *counters) acks(r ackResult) {
	switch {
	case r.OK:
		c.ackOK.Add(1)
	case r.Code == CodeTimeout:
		c.ackTime.Add(1)
	case r.Code == CodeStateDiffers:
		c.ackDiffer.Add(1)
	default:
		c.ackFailed.Add(1)
	}
	outcome := "ok"
	if !r.OK {
		outcome = r.Code
	}
	for i, o := range commandOutcomes {
		if o == outcome {
			c.commands[i].Add(1)
			return
		}
	}
	c.commands[len(commandOutcomes)-1].Add(1) // "other"
}

// commandOutcomes are how commands end, in the order counters keep them:
// "ok", then the codes of a failed ack, then anything else.
var commandOutcomes = [...]string{"ok", CodeTimeout, CodeStateDiffers, CodeOffline, CodeForbidden, CodeUnavailable,
	CodeBadValue, CodeUnknownDevice, CodeUnknownEntity, CodeNotControl, CodeLimit, CodeBadJSON, CodeBadTopic, "other"}

func (c *counters) closed(r CloseReason) {
	for i, known := range closeReasons {
		if known == r {
			c.closes[i].Add(1)
			return
		}
	}
}

// histogram counts latencies in doubling buckets from 50 µs, with atomic
// adds only, so writers can record every message (a write's at once:
// latencies).
type histogram struct {
	counts [latencyBuckets]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

const (
	latencyBuckets = 20 // 50 µs … 13 s, then the rest
	latencyBase    = 50 * time.Microsecond
)

// latencyBucket is the bucket of d (at least 0): 0 for < 50 µs, 1 for <
// 100 µs, ...
func latencyBucket(d time.Duration) int {
	return min(bits.Len64(uint64(d/latencyBase)), latencyBuckets-1)
}

// latencies are a histogram's counts of one goroutine's, for the lines of
// one write, added to the histogram at once.
type latencies struct {
	counts [latencyBuckets]uint32
	sum    int64 // nanoseconds
	n      int
}

func (l *latencies) observe(d time.Duration) {
	d = max(d, 0)
	l.counts[latencyBucket(d)]++
	l.sum += int64(d)
	l.n++
}

// add adds l's counts, one atomic add per bucket used.
func (h *histogram) add(l *latencies) {
	if l.n == 0 {
		return
	}
	for i, n := range l.counts {
		if n > 0 {
			h.counts[i].Add(uint64(n))
		}
	}
	h.sum.Add(l.sum)
}

func (h *histogram) snapshot() LatencyStats {
	s := LatencyStats{Bounds: make([]time.Duration, latencyBuckets), Counts: make([]uint64, latencyBuckets)}
	for i := range latencyBuckets {
		s.Bounds[i] = latencyBase << i
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Bounds[latencyBuckets-1] = time.Duration(1<<63 - 1)
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	c := &h.stats
	s := Stats{
		Received:        c.received.Load(),
		SlowDisconnects: c.slow.Load(),
		AcksOK:          c.ackOK.Load(),
		AcksTimeout:     c.ackTime.Load(),
		AcksDiffer:      c.ackDiffer.Load(),
		AcksFailed:      c.ackFailed.Load(),
		SessionsRefused: c.refused.Load(),
		Forbidden:       c.forbidden.Load(),
		RateLimited:     c.limited.Load(),
		StalePositions:  c.stalePositions.Load(),
		AheadWaits:      c.aheadWaits.Load(),
		SessionsBy:      map[string]uint64{},
		DeliveredBy:     map[string]uint64{},
		BytesOutBy:      map[string]uint64{},
		PublishedBy:     map[string]uint64{},
		Closes:          map[string]uint64{},
		Latency:         c.latency.snapshot(),
		Commands:        map[string]uint64{},
		Devices:         c.devicesKnown.Load(),
		ModelOverflows:  c.modelOverflows.Load(),
		ModelRebuilt:    c.modelRebuilds.Load(),
		ModelRefused:    map[string]uint64{},
	}
	if refused := c.modelRefused.Load(); refused != nil {
		maps.Copy(s.ModelRefused, *refused)
	}
	for i, o := range commandOutcomes {
		s.Commands[o] = c.commands[i].Load()
	}
	s.CommandsWaiting = h.acks.waiting.Load()
	for t := range transports {
		n := c.sessionsBy[t].Load()
		s.Sessions += n
		s.SessionsBy[transportNames[t]] = uint64(n)
		s.DeliveredBy[transportNames[t]] = c.deliveredBy[t].Load()
		s.Delivered += s.DeliveredBy[transportNames[t]]
		s.BytesOutBy[transportNames[t]] = c.bytesOutBy[t].Load()
	}
	for src := range sources {
		s.PublishedBy[sourceNames[src]] = c.publishedBy[src].Load()
		s.Published += s.PublishedBy[sourceNames[src]]
	}
	for i, r := range closeReasons {
		s.Closes[r.Text] = c.closes[i].Load()
	}
	s.BusSubscriptions = h.interest.count()
	return s
}
