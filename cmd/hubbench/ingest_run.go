package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ingestRun is the state of one ingest run; runIngest owns every goroutine
// it starts: one reader per dashboard and the fleet's senders.
type ingestRun struct {
	cfg  ingestConfig
	log  *slog.Logger
	sink *sink

	dashes  []subscriber // nil where the connect failed
	states  []*subState
	closing atomic.Bool
	cutOff  atomic.Int64
	cutWhy  atomic.Value // string: the first reason a dashboard was cut off
	wg      sync.WaitGroup
}

func runIngest(ctx context.Context, cfg ingestConfig, log *slog.Logger) (res ingestResult, err error) {
	res = ingestResult{
		Kind: "ingest", Time: time.Now().UTC().Format(time.RFC3339), Target: cfg.Target, Variant: cfg.Variant,
		Data: cfg.Data, History: cfg.History, Repeat: cfg.Repeat, Transport: cfg.Transport, Overflow: cfg.Overflow,
		Devices: cfg.Devices, Dashboard: cfg.Dashboards, Rate: cfg.Rate, Payload: cfg.Payload,
		WarmupS: cfg.Warmup.Seconds(), MeasureS: cfg.Measure.Seconds(),
	}
	r := &ingestRun{cfg: cfg, log: log, sink: &sink{}}
	defer r.shutdown()

	began := time.Now()
	fl, connected, cerr := connectFleet(ctx, cfg.PubAddr, cfg.Topics, cfg.Devices, cfg.Parallel)
	if fl == nil {
		return res, cerr
	}
	defer fl.close()
	res.DevicesConnected = connected
	if cerr != nil {
		res.ConnectError = cerr.Error()
		log.Warn("device connect failures", "failed", cfg.Devices-connected, "first", cerr)
	}
	if connected == 0 {
		return res, fmt.Errorf("ingest: no device connected: %w", cerr)
	}
	if err := r.connectDashboards(ctx, &res); err != nil {
		return res, err
	}
	res.ConnectSeconds = time.Since(began).Seconds()

	start := time.Now().Add(cfg.Settle)
	from := start.Add(cfg.Warmup)
	to := from.Add(cfg.Measure)
	maxSeq := uint64(cfg.Rate*(cfg.Warmup+cfg.Measure).Seconds()) + 1024
	r.sink.lat = newLatencies(8, from.UnixNano(), to.UnixNano())
	r.startReaders(maxSeq)
	if res.RSSIdleKB, err = rssKB(cfg.PID); err != nil {
		return res, err
	}
	log.Info("connected", "devices", connected, "dashboards", res.DashboardsConnected, "connect_s", round(res.ConnectSeconds, 2))

	pubDone := make(chan struct{})
	r.wg.Go(func() {
		defer close(pubDone)
		fl.publish(ctx, cfg.Senders, cfg.Rate, cfg.Payload, start, to, from, to)
	})
	if err := r.measure(ctx, &res, from, to); err != nil {
		return res, err
	}
	<-pubDone
	r.sink.drain(ctx, r.cfg.MaxDrain)
	r.shutdown()
	r.tally(&res, fl, to.Sub(from))
	if cfg.DataDir != "" {
		if res.DataBytes, err = dirBytes(cfg.DataDir); err != nil {
			return res, err
		}
	}
	return res, nil
}

// dirBytes is the size of the regular files in dir and below it.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}

// dashboardURL is where a dashboard of the run connects.
func (c *ingestConfig) dashboardURL() string {
	switch c.Transport {
	case transportSSE:
		q := url.Values{"filter": {c.Filter}}
		if c.Overflow != "" {
			q.Set("overflow", c.Overflow)
		}
		return "http://" + c.SubAddr + "/events?" + q.Encode()
	case transportMQTTWS:
		return "ws://" + c.SubAddr + "/mqtt"
	}
	return "ws://" + c.SubAddr + "/ws"
}

// connectDashboards connects every dashboard, one after the other (there
// are few).
func (r *ingestRun) connectDashboards(ctx context.Context, res *ingestResult) error {
	n := r.cfg.Dashboards
	r.dashes = make([]subscriber, n)
	r.states = make([]*subState, n)
	for i := range n {
		st := &subState{index: i, sink: r.sink}
		r.states[i] = st
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		var s subscriber
		var err error
		switch r.cfg.Transport {
		case transportSSE:
			s, err = connectSSE(cctx, r.cfg.dashboardURL(), st)
		case transportMQTTWS:
			s, err = connectMQTTWS(cctx, r.cfg.dashboardURL(), r.cfg.Filter, fmt.Sprintf("hubbench-dash-%d", i), st)
		default:
			// A conflated backlog may come as one large message.
			s, err = connectClown(cctx, r.cfg.dashboardURL(), clownConfig{Subscribe: []string{r.cfg.Filter}, Overflow: r.cfg.Overflow}, 1<<20, st)
		}
		cancel()
		if err != nil {
			if res.ConnectError == "" {
				res.ConnectError = err.Error()
			}
			r.log.Warn("dashboard did not connect", "err", err)
			continue
		}
		r.dashes[i] = s
		res.DashboardsConnected++
	}
	if ctx.Err() != nil {
		return fmt.Errorf("connect dashboards: %w", ctx.Err())
	}
	if n > 0 && res.DashboardsConnected == 0 {
		return fmt.Errorf("ingest: no dashboard connected: %s", res.ConnectError)
	}
	return nil
}

// startReaders starts one reader per connected dashboard.
func (r *ingestRun) startReaders(maxSeq uint64) {
	for i, s := range r.dashes {
		r.states[i].seq = newSeqTracker(maxSeq)
		if s == nil {
			continue
		}
		r.wg.Go(func() {
			err := s.read()
			if !r.closing.Load() {
				r.cutOff.Add(1)
				r.cutWhy.CompareAndSwap(nil, fmt.Sprint(err))
			}
		})
	}
}

// measure reads the target's CPU at the window's edges and its memory
// within it.
func (r *ingestRun) measure(ctx context.Context, res *ingestResult, from, to time.Time) error {
	pid := r.cfg.PID
	sleepUntil(ctx, from)
	cpu0, err := cpuSeconds(pid)
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
	res.RSSPeakKB = res.RSSIdleKB
	for t := from.Add(time.Second); t.Before(to) && ctx.Err() == nil; t = t.Add(time.Second) {
		sleepUntil(ctx, t)
		if kb, err := rssKB(pid); err == nil {
			res.RSSPeakKB = max(res.RSSPeakKB, kb)
		}
	}
	sleepUntil(ctx, to)
	cpu1, err := cpuSeconds(pid)
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
	res.CPUBusy, res.CPUSoftIRQ, _ = cpuShares(stat0, stat1)
	secs := to.Sub(from).Seconds()
	res.TargetCPUSeconds = cpu1 - cpu0
	res.TargetCPUCores = res.TargetCPUSeconds / secs
	res.LoadgenCPUCores = (self1 - self0) / secs
	res.ForeignCores = foreignCores(stat0, stat1, secs, res.TargetCPUCores, res.LoadgenCPUCores)
	return ctx.Err()
}

// shutdown closes every dashboard and waits for every goroutine; it may be
// called more than once.
func (r *ingestRun) shutdown() {
	if !r.closing.Swap(true) {
		for _, s := range r.dashes {
			if s != nil {
				s.close()
			}
		}
	}
	r.wg.Wait()
}

// tally turns what the devices sent and the dashboards saw into the result.
func (r *ingestRun) tally(res *ingestResult, fl *fleet, window time.Duration) {
	res.Published = min(fl.seq.Load(), fl.maxSeq)
	res.PublisherBehind = fl.behind.Load()
	res.DeviceErrors = int(fl.errors.Load())
	res.WindowMessages = fl.countWindow()
	res.PublishedPerSec = float64(res.WindowMessages) / window.Seconds()
	res.Expected = res.WindowMessages * uint64(res.DashboardsConnected)
	for i, st := range r.states {
		if r.dashes[i] != nil && st.seq != nil {
			res.Delivered += fl.deliveredIn(st.seq)
		}
	}
	res.CutOff = int(r.cutOff.Load())
	if why, ok := r.cutWhy.Load().(string); ok {
		res.CutReason = why
	}
	res.Others = r.sink.others.Load()
	if res.Expected > 0 {
		res.DeliveryRatio = float64(res.Delivered) / float64(res.Expected)
	}
	if res.WindowMessages > 0 {
		res.CPUUsPerMessage = res.TargetCPUSeconds * 1e6 / float64(res.WindowMessages)
	}
	if res.Delivered > 0 {
		res.CPUUsPerDelivery = res.TargetCPUSeconds * 1e6 / float64(res.Delivered)
	}
	h := r.sink.lat.merged()
	res.LatencyUs = latencySummary{
		Count: h.TotalCount(), P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max(),
	}
	// With no dashboard nothing is delivered: the hub kept up when the
	// devices were on time.
	delivered := res.DashboardsConnected == 0 ||
		(res.DeliveryRatio >= 0.999 && res.LatencyUs.P99 < 1_000_000 && res.CutOff == 0)
	res.Sustained = delivered && res.DeviceErrors == 0 && float64(res.PublisherBehind) < 0.001*float64(res.Published)
}
