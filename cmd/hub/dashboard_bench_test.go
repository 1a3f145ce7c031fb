package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/cdproto/profiler"
	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// benchMotes is how many simulated motes BenchmarkDashboard500 runs unless
// HUB_BENCH_MOTES says otherwise: each reports its ASN and temperature
// every second and its PIR count now and then, and is a card of the hub's
// device model.
const benchMotes = 500

// benchWindow is how long BenchmarkDashboard500 watches the page per op,
// after a warm-up as long.
const benchWindow = 10 * time.Second

// frameProbe collects, in the page, the tasks of the main thread longer than
// 50 ms (PerformanceObserver "longtask") and the interval between animation
// frames; probe.take() returns what it collected since the last take.
const frameProbe = `(() => {
	let long = [], frames = [];
	new PerformanceObserver((list) => { for (const e of list.getEntries()) long.push(e.duration); }).observe({type: "longtask"});
	let last = performance.now();
	const loop = (t) => { frames.push(t - last); last = t; requestAnimationFrame(loop); };
	requestAnimationFrame(loop);
	window.probe = {take: () => { const out = {long, frames}; long = []; frames = []; return out; }};
	return true;
})()`

// probeResult is what probe.take() returns: durations in milliseconds.
type probeResult struct{ Long, Frames []float64 }

// BenchmarkDashboard500 opens the dashboard of a hub with 500 simulated
// motes updating every second, and prints how the page copes. While the
// devices arrive (load-): the long tasks (over 50 ms: count, longest) and
// how long until the page knows them all. Then, after a warm-up, over
// benchWindow: long tasks, the interval between animation frames (p50,
// p99, max; 16.7 ms is 60 frames a second), and how busy the page's main
// thread was (DevTools' TaskDuration, ScriptDuration, and Layout plus
// RecalcStyle durations, as a share of wall time: less sensitive to the
// machine's other load than the frame timings). Run it on a quiet machine:
//
//	go test ./cmd/hub -run '^$' -bench Dashboard500 -benchtime 1x
//	HUB_BENCH_MOTES=100 go test ./cmd/hub -run '^$' -bench Dashboard500 -benchtime 1x
//
// With HUB_BENCH_HISTORY=1 the hub keeps a history (--data in a temporary
// directory), so that the charts load its series form (the page's default
// elsewhere, with --data ./hub-data) rather than the recent messages.
// With HUB_BENCH_PROFILE=1 it also logs the page's JavaScript functions
// that took the most time in the window (by self time, from DevTools' profiler);
// with HUB_BENCH_TRACE=file.json it writes a DevTools trace of the window to
// file.json (open it in DevTools' Performance panel or ui.perfetto.dev).
func BenchmarkDashboard500(b *testing.B) {
	motes := benchMotes
	if v := os.Getenv("HUB_BENCH_MOTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			b.Fatalf("HUB_BENCH_MOTES=%q: want a number of motes from 1 to 5000", v)
		}
		motes = n
	}
	// Every mote is an MQTT client of its own, all from 127.0.0.1.
	args := []string{"--demo", "--demo-motes", fmt.Sprint(motes), "--max-connections-per-address", fmt.Sprint(2 * motes)}
	if os.Getenv("HUB_BENCH_HISTORY") == "1" {
		args = append(args, "--data", b.TempDir())
	}
	h := startHub(b, args...)
	br := hubtest.NewBrowser(b)
	br.Do(b, chromedp.EmulateViewport(1280, 800))
	openDashboard(b, br, h, "")
	ctx, cancel := context.WithTimeout(br.Ctx, 10*slowPage)
	defer cancel()
	if _, err := chromedp.Call(ctx, performance.Enable, performance.EnableParams{}); err != nil {
		b.Fatalf("enabling the Performance domain: %v", err)
	}
	evalSlow[bool](b, br, frameProbe)
	opened := time.Now()
	// A page that cannot keep up answers late: every wait here allows for it.
	waitSlow(b, br, `[...motehub.store.models.values()].filter(d => d.convention === "hardwario").length >= `+fmt.Sprint(motes),
		`[motehub.store.models.size, motehub.store.devices.size, motehub.store.status.state]`)
	loaded := time.Since(opened)
	load := evalSlow[probeResult](b, br, `probe.take()`)
	b.ResetTimer()
	for range b.N {
		// Not synchronisation: the page runs on its own while it is watched.
		time.Sleep(benchWindow) // warm-up: the charts' histories load
		evalSlow[probeResult](b, br, `probe.take()`)
		before := pageMetrics(ctx, b)
		profiling := os.Getenv("HUB_BENCH_PROFILE") == "1" && startProfile(ctx, b)
		var trace *pageTrace
		if os.Getenv("HUB_BENCH_TRACE") != "" {
			trace = startTrace(ctx, b)
		}
		time.Sleep(benchWindow)
		got := evalSlow[probeResult](b, br, `probe.take()`)
		after := pageMetrics(ctx, b)
		if profiling {
			logProfile(ctx, b)
		}
		if trace != nil {
			trace.stop(ctx, b, os.Getenv("HUB_BENCH_TRACE"))
		}
		frames := slices.Clone(got.Frames)
		slices.Sort(frames)
		busy := func(names ...string) float64 {
			sum := 0.0
			for _, n := range names {
				sum += after[n] - before[n]
			}
			return sum / benchWindow.Seconds() * 100
		}
		b.ReportMetric(float64(len(load.Long)), "load-longtasks")
		b.ReportMetric(slices.Max(append(load.Long, 0)), "load-longest-ms")
		b.ReportMetric(loaded.Seconds(), "load-s")
		b.ReportMetric(float64(len(got.Long)), "longtasks")
		b.ReportMetric(slices.Max(append(got.Long, 0)), "longest-ms")
		b.ReportMetric(percentile(frames, 0.50), "frame-p50-ms")
		b.ReportMetric(percentile(frames, 0.99), "frame-p99-ms")
		b.ReportMetric(percentile(frames, 1), "frame-max-ms")
		b.ReportMetric(busy("TaskDuration"), "main-busy-%")
		b.ReportMetric(busy("ScriptDuration"), "script-%")
		b.ReportMetric(busy("LayoutDuration", "RecalcStyleDuration"), "layout-style-%")
		// The same work in milliseconds per second of wall time: what the page asks of a core.
		b.ReportMetric(busy("ScriptDuration", "LayoutDuration", "RecalcStyleDuration")*1000/100, "script+layout+style-ms/s")
		b.Logf("%d motes: %d frames in %v; DOM nodes %.0f; JS heap %.1f MB", motes, len(frames), benchWindow, after["Nodes"], after["JSHeapUsedSize"]/(1<<20))
	}
	b.StopTimer()
	checkConsole(b, br)
}

// slowPage is how long the benchmark waits for a busy page to answer.
const slowPage = 2 * time.Minute

// evalSlow is hubtest.Eval for a page that may take long to answer.
func evalSlow[T any](t testing.TB, b *hubtest.Browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, slowPage)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("browser: evaluating %.60q: %v", js, err)
	}
	return v
}

// waitSlow polls cond in a page that may take long to answer, for at most slowPage.
func waitSlow(t testing.TB, b *hubtest.Browser, cond, describe string) {
	t.Helper()
	deadline := time.Now().Add(slowPage)
	for !evalSlow[bool](t, b, "Boolean("+cond+")") {
		if time.Now().After(deadline) {
			t.Fatalf("after %v the page never had %s; %s = %v", slowPage, cond, describe, evalSlow[any](t, b, describe))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageMetrics are DevTools' run-time metrics of the page, by name.
func pageMetrics(ctx context.Context, t testing.TB) map[string]float64 {
	t.Helper()
	res, err := chromedp.Call(ctx, performance.GetMetrics, cdp.Empty{})
	if err != nil {
		t.Fatalf("reading the page's metrics: %v", err)
	}
	out := make(map[string]float64, len(res.Metrics))
	for _, m := range res.Metrics {
		out[m.Name] = m.Value
	}
	return out
}

// percentile is the value below which fraction p of sorted lies (0 for none).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

// startProfile starts DevTools' JavaScript profiler in the page.
func startProfile(ctx context.Context, t testing.TB) bool {
	t.Helper()
	if _, err := chromedp.Call(ctx, profiler.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enabling the profiler: %v", err)
	}
	if _, err := chromedp.Call(ctx, profiler.Start, cdp.Empty{}); err != nil {
		t.Fatalf("starting the profiler: %v", err)
	}
	return true
}

// logProfile stops the profiler and logs the functions with the most self
// time, at most 25.
func logProfile(ctx context.Context, t testing.TB) {
	t.Helper()
	res, err := chromedp.Call(ctx, profiler.Stop, cdp.Empty{})
	if err != nil || res.Profile == nil {
		t.Fatalf("stopping the profiler: %v", err)
	}
	p := res.Profile
	hits := map[string]int64{}
	var total int64
	for _, n := range p.Nodes {
		f := n.CallFrame
		name := fmt.Sprintf("%s %s:%d", cmp.Or(f.FunctionName, "(anonymous)"), path.Base(f.URL), f.LineNumber+1)
		hits[name] += n.HitCount
		total += n.HitCount
	}
	names := slices.Collect(maps.Keys(hits))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(hits[b], hits[a]) })
	var out strings.Builder
	for _, name := range names[:min(25, len(names))] {
		fmt.Fprintf(&out, "\n%6.1f%% %s", float64(hits[name])/float64(max(total, 1))*100, name)
	}
	t.Logf("page profile, self time:%s", out.String())
}
