package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// runConfig is one run: one target, one transport, N subscribers, one rate.
type runConfig struct {
	Target    string // "motehub" or "mosquitto": a label
	Transport string // transportWS, ...
	Variant   string // a label: how the processes were placed on the CPUs
	Probe     bool   // the low-rate latency probe
	Idle      bool   // connect, read the memory, publish nothing
	Repeat    int

	// SubAddr is the host:port subscribers connect to; SubAddrs, when set,
	// are several (replicas), the subscribers spread over them round-robin.
	SubAddr  string
	SubAddrs []string
	PubAddr  string // host:port the publisher connects to: MQTT/TCP, NATS/TCP, or Centrifugo's HTTP API
	APIKey   string // Centrifugo's HTTP API key
	// HTTPPublishers is how many publish requests to Centrifugo's HTTP API
	// may be in flight at once.
	HTTPPublishers int
	// PID is the target process, for /proc; Procs, when set, are every
	// process of the target (PID is then the first's): see procs.go.
	PID   string
	Procs []watchedProc
	// Layout labels a run of several processes ("2 replicas"): the report
	// shows such runs in their own section.
	Layout  string
	GCTrace string // the target's GODEBUG=gctrace=1 output, if it is Go

	Subscribers int
	Rate        float64 // messages/s
	Payload     int     // bytes
	Topic       string
	Filter      string

	Warmup, Measure time.Duration
	Settle          time.Duration // after the last connect, before idle memory is read
	MaxDrain        time.Duration // how long to wait for stragglers after the last publish
	Parallel        int           // connects in flight at once
	During          string        // shell command run during the measured window ($PID is the target)
	DumpOnStall     bool          // SIGQUIT a Go target that delivered nothing, for its goroutine stacks
}

// connectTimeout bounds one subscriber's connect and subscribe.
const connectTimeout = 15 * time.Second

// normalize fills the list forms from the single ones (or the other way
// round), so that a run has SubAddrs and Procs, and SubAddr and PID are
// their first.
func (c *runConfig) normalize() {
	if len(c.SubAddrs) == 0 && c.SubAddr != "" {
		c.SubAddrs = []string{c.SubAddr}
	}
	if len(c.SubAddrs) > 0 {
		c.SubAddr = c.SubAddrs[0]
	}
	if len(c.Procs) == 0 && c.PID != "" {
		c.Procs = []watchedProc{{Label: c.PID, PID: c.PID}}
	}
	if len(c.Procs) > 0 {
		c.PID = c.Procs[0].PID
	}
}

// subURL is where a subscriber of transport connects (the first address).
func (c *runConfig) subURL() string { return c.subURLFor(c.SubAddr) }

// subURLFor is where a subscriber of transport connects at addr.
func (c *runConfig) subURLFor(addr string) string {
	switch c.Transport {
	case transportSSE:
		return "http://" + addr + "/events?filter=" + urlQueryEscape(c.Filter)
	case transportMQTTWS:
		return "ws://" + addr + "/mqtt"
	case transportCentWS:
		return "ws://" + addr + "/connection/websocket"
	case transportNATSWS:
		return "ws://" + addr + "/"
	case transportMQTTTCP:
		return "tcp://" + addr
	}
	return "ws://" + addr + "/ws"
}

// bench is the state of one run; run owns every goroutine it starts.
type bench struct {
	cfg  runConfig
	log  *slog.Logger
	sink *sink

	subs    []subscriber // nil where the connect failed
	states  []*subState
	procs   *procSet // the target's processes
	closing atomic.Bool
	dropped atomic.Int64
	dropErr atomic.Value // string: the first reason a connection ended early
	// addrDropped counts dropped connections per subscriber address (one
	// counter per address of cfg.SubAddrs: bounded by maxSubAddrs).
	addrDropped []atomic.Int64
	// deliveredBy is what each subscriber received in the window (tally
	// fills it; one entry per subscriber).
	deliveredBy []uint64

	wg sync.WaitGroup
}

func runBench(ctx context.Context, cfg runConfig, log *slog.Logger) (res result, err error) {
	cfg.normalize()
	res = result{
		Kind: "run", Time: time.Now().UTC().Format(time.RFC3339), Target: cfg.Target, Transport: cfg.Transport,
		Variant: cfg.Variant, Layout: cfg.Layout, Probe: cfg.Probe, Idle: cfg.Idle, Repeat: cfg.Repeat, Subscribers: cfg.Subscribers, Rate: cfg.Rate,
		Offered: cfg.Rate * float64(cfg.Subscribers), PayloadBytes: cfg.Payload,
		WarmupS: cfg.Warmup.Seconds(), MeasureS: cfg.Measure.Seconds(),
		HeapNoneMB: -1, HeapIdleMB: -1, HeapPeakMB: -1,
	}
	if len(cfg.SubAddrs) == 0 || len(cfg.Procs) == 0 {
		return res, errors.New("run: no subscriber address or no process to watch")
	}
	b := &bench{cfg: cfg, log: log, sink: &sink{}, procs: newProcSet(cfg.Procs), addrDropped: make([]atomic.Int64, len(cfg.SubAddrs))}
	defer b.shutdown()
	defer b.record(&res)

	var pub benchPublisher
	if !cfg.Idle {
		if pub, err = dialBenchPublisher(ctx, &cfg); err != nil {
			return res, err
		}
		defer pub.close()
	}
	if res.RSSNoneKB, err = b.procs.rss(func(r *procResult, kb int64) { r.RSSNoneKB = kb }); err != nil {
		return res, err
	}
	res.HeapNoneMB, _ = lastLiveHeapMB(cfg.GCTrace)

	// Connect, then fix the timeline, then start reading.
	if err := b.connect(ctx, &res); err != nil {
		return res, err
	}
	maxSeq := uint64(cfg.Rate*(cfg.Warmup+cfg.Measure+time.Second).Seconds()) + 1024
	start := time.Now().Add(cfg.Settle + 100*time.Millisecond)
	from := start.Add(cfg.Warmup)
	to := from.Add(cfg.Measure)
	b.sink.lat = newLatencies(8, from.UnixNano(), to.UnixNano())
	b.startReaders(maxSeq)
	stopPings := b.startPinger(pub)
	defer stopPings()

	sleepUntil(ctx, start.Add(-100*time.Millisecond))
	if res.RSSIdleKB, err = b.procs.rss(func(r *procResult, kb int64) { r.RSSIdleKB, r.RSSPeakKB = kb, kb }); err != nil {
		return res, err
	}
	res.HeapIdleMB, _ = lastLiveHeapMB(cfg.GCTrace)
	if res.Connected > 0 {
		res.MemPerConnBytes = float64(res.RSSIdleKB-res.RSSNoneKB) * 1024 / float64(res.Connected)
	}
	log.Info("subscribed", "connected", res.Connected, "failed", res.ConnectFailed,
		"connect_s", round(res.ConnectSeconds, 2), "mem_per_conn_bytes", int(res.MemPerConnBytes))
	if cfg.Idle {
		stopPings()
		b.shutdown()
		res.Dropped = int(b.dropped.Load())
		if r, ok := b.dropErr.Load().(string); ok {
			res.DropReason = r
		}
		return res, nil
	}

	pubDone := make(chan struct{})
	var pst pubStats
	var perr error
	b.wg.Go(func() {
		defer close(pubDone)
		pst, perr = pub.run(ctx, cfg.Topic, cfg.Rate, cfg.Payload, start, to, from, to)
	})

	if err := b.measure(ctx, &res, from, to); err != nil {
		return res, err
	}
	<-pubDone
	if cp, ok := pub.(*centrifugoPublisher); ok {
		res.PublishFailed, res.PublishError = cp.failures()
	}
	if perr != nil {
		return res, perr
	}
	b.sink.drain(ctx, b.cfg.MaxDrain)
	b.shutdown()
	b.tally(&res, pst, to.Sub(from))
	if res.Delivered == 0 && res.Published > 0 && cfg.DumpOnStall {
		b.dumpStacks()
	}
	return res, nil
}

// connect dials every subscriber, Parallel at a time.
func (b *bench) connect(ctx context.Context, res *result) error {
	n := b.cfg.Subscribers
	b.subs = make([]subscriber, n)
	b.states = make([]*subState, n)
	b.deliveredBy = make([]uint64, n)
	hist := hdrhistogram.New(1, 120_000_000, 2)
	var mu sync.Mutex
	var failed atomic.Int64
	var firstErr atomic.Value
	idx := make(chan int)
	var wg sync.WaitGroup
	began := time.Now()
	for range max(1, b.cfg.Parallel) {
		wg.Go(func() {
			for i := range idx {
				st := &subState{index: i, sink: b.sink}
				b.states[i] = st
				cctx, cancel := context.WithTimeout(ctx, connectTimeout)
				t0 := time.Now()
				s, err := connectSubscriber(cctx, b.cfg.Transport, b.cfg.subURLFor(b.cfg.addrOf(i)), b.cfg.Filter, st)
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b.subs[i] = s
				mu.Lock()
				_ = hist.RecordValue(time.Since(t0).Microseconds())
				mu.Unlock()
			}
		})
	}
	for i := range n {
		select {
		case idx <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(idx)
	wg.Wait()
	res.ConnectSeconds = time.Since(began).Seconds()
	res.ConnectFailed = int(failed.Load())
	res.Connected = int(hist.TotalCount())
	res.ConnectP99Ms = float64(hist.ValueAtQuantile(99)) / 1000
	if e, ok := firstErr.Load().(string); ok {
		res.ConnectError = e
		b.log.Warn("connect failures", "failed", res.ConnectFailed, "first", e)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if res.Connected == 0 {
		return fmt.Errorf("connect: no subscriber connected: %s", res.ConnectError)
	}
	return nil
}

// dialBenchPublisher connects the publisher the transport's target takes:
// NATS over TCP, Centrifugo's HTTP API, or MQTT over TCP.
func dialBenchPublisher(ctx context.Context, cfg *runConfig) (benchPublisher, error) {
	switch cfg.Transport {
	case transportNATSWS:
		return dialNATSPublisher(ctx, cfg.PubAddr)
	case transportCentWS:
		return newCentrifugoPublisher(cfg.PubAddr, cfg.APIKey, cfg.HTTPPublishers)
	}
	return dialPublisher(ctx, cfg.PubAddr, fmt.Sprintf("hubbench-pub-%d", os.Getpid()))
}

// startReaders starts one reader goroutine per connected subscriber.
func (b *bench) startReaders(maxSeq uint64) {
	for i, s := range b.subs {
		st := b.states[i]
		st.seq = newSeqTracker(maxSeq)
		if s == nil {
			continue
		}
		b.wg.Go(func() {
			err := s.read()
			if !b.closing.Load() {
				b.dropped.Add(1)
				b.addrDropped[i%len(b.addrDropped)].Add(1)
				b.dropErr.CompareAndSwap(nil, fmt.Sprint(err))
			}
		})
	}
}

// startPinger keeps MQTT connections alive; stop waits for it.
func (b *bench) startPinger(pub benchPublisher) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(mqttKeepAlive * time.Second / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if pub != nil {
				_ = pub.ping()
			}
			for _, s := range b.subs {
				if s != nil && !b.closing.Load() {
					_ = s.ping()
				}
			}
		}
	})
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}

// measure samples the target at the window's edges and memory within it.
func (b *bench) measure(ctx context.Context, res *result, from, to time.Time) error {
	sleepUntil(ctx, from)
	cpu0, err := b.procs.startWindow()
	if err != nil {
		return err
	}
	self0, err := cpuSeconds("self")
	if err != nil {
		return err
	}
	stat0, err := readCPUTimes()
	if err != nil {
		return err
	}
	wait := b.startDuring(ctx)
	res.RSSPeakKB, res.HeapPeakMB = res.RSSIdleKB, res.HeapIdleMB
	for t := from.Add(time.Second); t.Before(to) && ctx.Err() == nil; t = t.Add(time.Second) {
		sleepUntil(ctx, t)
		if kb, err := b.procs.rss(func(r *procResult, kb int64) { r.RSSPeakKB = max(r.RSSPeakKB, kb) }); err == nil {
			res.RSSPeakKB = max(res.RSSPeakKB, kb)
		}
		if mb, _ := lastLiveHeapMB(b.cfg.GCTrace); mb > res.HeapPeakMB {
			res.HeapPeakMB = mb
		}
	}
	sleepUntil(ctx, to)
	secs := to.Sub(from).Seconds()
	cpu1, err := b.procs.endWindow(secs)
	if err != nil {
		return err
	}
	self1, err := cpuSeconds("self")
	if err != nil {
		return err
	}
	stat1, err := readCPUTimes()
	if err != nil {
		return err
	}
	res.CPUBusy, res.CPUSoftIRQ, res.CPUSteal = cpuShares(stat0, stat1)
	res.TargetCPUSeconds = cpu1 - cpu0
	res.TargetCPUCores = res.TargetCPUSeconds / secs
	res.LoadgenCPUCores = (self1 - self0) / secs
	res.ForeignCores = foreignCores(stat0, stat1, secs, res.TargetCPUCores, res.LoadgenCPUCores)
	wait()
	return ctx.Err()
}

// startDuring runs the -during command, if any; the returned func waits
// for it (and kills it when it outlives the run by 30 s).
func (b *bench) startDuring(ctx context.Context) (wait func()) {
	if b.cfg.During == "" {
		return func() {}
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Measure+30*time.Second)
	cmd := exec.CommandContext(cctx, "sh", "-c", b.cfg.During)
	cmd.Env = append(os.Environ(), "PID="+b.cfg.PID)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		b.log.Warn("-during did not start", "err", err)
		return func() {}
	}
	return func() {
		if err := cmd.Wait(); err != nil {
			b.log.Warn("-during failed", "err", err)
		}
		cancel()
	}
}

// shutdown closes every subscriber and waits for every goroutine. It may be
// called more than once.
func (b *bench) shutdown() {
	if !b.closing.Swap(true) {
		var wg sync.WaitGroup
		for i := 0; i < len(b.subs); i += 256 { // close in chunks, a few at once
			chunk := b.subs[i:min(i+256, len(b.subs))]
			wg.Go(func() {
				for _, s := range chunk {
					if s != nil {
						s.close()
					}
				}
			})
		}
		wg.Wait()
	}
	b.wg.Wait()
}

// tally turns what the subscribers saw into the result.
func (b *bench) tally(res *result, pst pubStats, window time.Duration) {
	res.Published, res.PublisherBehind = pst.Sent, pst.Behind
	var inWindow uint64
	if pst.WindowFirst > 0 {
		inWindow = pst.WindowLast - pst.WindowFirst + 1
	}
	res.Expected = inWindow * uint64(b.cfg.Subscribers)
	for _, st := range b.states {
		if st == nil || st.seq == nil {
			continue
		}
		if inWindow > 0 {
			n := st.seq.countRange(pst.WindowFirst, pst.WindowLast)
			res.Delivered += n
			b.deliveredBy[st.index] = n
		}
		res.Duplicates += st.seq.duplicates
		res.Reordered += st.seq.reordered
	}
	res.Dropped = int(b.dropped.Load())
	if r, ok := b.dropErr.Load().(string); ok {
		res.DropReason = r
	}
	res.Others = b.sink.others.Load()
	res.DeliveredPerSec = float64(res.Delivered) / window.Seconds()
	if res.Expected > 0 {
		res.DeliveryRatio = float64(res.Delivered) / float64(res.Expected)
	}
	if res.Delivered > 0 {
		res.CPUPerMDeliveries = res.TargetCPUSeconds / (float64(res.Delivered) / 1e6)
	}
	b.procs.perDelivery(res.Delivered)
	h := b.sink.lat.merged()
	res.LatencyUs = latencySummary{
		Count: h.TotalCount(), P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max(),
	}
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// dumpStacks asks the target (a Go program, whose stderr the caller keeps)
// to print every goroutine's stack: SIGQUIT makes the Go runtime do that and
// exit. Only the target's own PID is signalled.
func (b *bench) dumpStacks() {
	pid, err := strconv.Atoi(b.cfg.PID)
	if err != nil || pid <= 1 {
		return
	}
	b.log.Warn("the target delivered nothing: asking it for its goroutine stacks (SIGQUIT)", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	time.Sleep(time.Second)
}

// errRunFailed marks a run whose result records an error.
var errRunFailed = errors.New("hubbench: run failed")
