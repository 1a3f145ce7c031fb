package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clusterRun makes one repeat of a cluster layout: each process's CPU
// seconds over a 10 s window, delivered messages, p99.
func clusterRun(layout string, rate float64, delivered uint64, p99us int64, cpu map[string]float64, order ...string) result {
	r := result{Kind: "run", Variant: "unpinned", Target: "motehub", Transport: transportWS, Layout: layout,
		Subscribers: 1000, Rate: rate, Offered: rate * 1000, MeasureS: 10, Delivered: delivered,
		Expected: uint64(rate) * 1000 * 10, DeliveredPerSec: float64(delivered) / 10,
		LatencyUs: latencySummary{Count: 100, P50: p99us / 4, P99: p99us}}
	r.DeliveryRatio = float64(r.Delivered) / float64(r.Expected)
	for _, l := range order {
		r.Procs = append(r.Procs, procResult{Label: l, PID: "1", CPUSeconds: cpu[l]})
		r.TargetCPUSeconds += cpu[l]
	}
	r.TargetCPUCores = r.TargetCPUSeconds / 10
	r.CPUPerMDeliveries = r.TargetCPUSeconds / (float64(delivered) / 1e6)
	return r
}

// TestReportCluster: runs with a layout get their own section (each
// layout's delivery and latency, then each process's share of a core and
// CPU per delivery, and the totals per kind of process), and stay out of
// the matrix's tables; with -cluster they come from their own file.
func TestReportCluster(t *testing.T) {
	t.Parallel()
	one := map[string]float64{"hub1": 6, "nats0": 0.2, "nats1": 0.1, "nats2": 0.3}
	two := map[string]float64{"hub1": 4, "hub2": 3, "nats0": 0.2, "nats1": 0.2, "nats2": 0.4}
	var rs results
	rs.Metas = []meta{{Kind: "meta", Date: "2026-01-01T00:00:00Z", Mode: "full"}}
	for range 3 {
		rs.Runs = append(rs.Runs,
			clusterRun("1 replica", 100, 1_000_000, 70_000, one, "hub1", "nats0", "nats1", "nats2"),
			clusterRun("2 replicas", 100, 1_000_000, 120_000, two, "hub1", "hub2", "nats0", "nats1", "nats2"))
	}
	// A second repeat set with a spread, at a higher rate.
	rs.Runs = append(rs.Runs,
		clusterRun("2 replicas", 400, 2_000_000, 900_000, map[string]float64{"hub1": 8, "hub2": 9}, "hub1", "hub2"),
		clusterRun("2 replicas", 400, 4_000_000, 500_000, map[string]float64{"hub1": 9, "hub2": 9}, "hub1", "hub2"))
	var b bytes.Buffer
	writeReport(&b, reportInput{Results: rs, ResultsPath: "bench/results/cluster.jsonl", Command: "make bench"})
	out := b.String()
	for _, want := range []string{
		"## Replicas behind a NATS cluster",
		"`BENCH_RUNS=cluster make bench`",
		"| 1 replica | 1000 | 100 | 100.00 % | 100k | 17.5 | 70.0 | 0.66 | 6.60 |",
		"| 2 replicas | 1000 | 100 | 100.00 % | 100k | 30.0 | 120 | 0.78 | 7.80 |",
		"| 2 replicas | 1000 | 400 | 75.00 % (50.00 %–100.00 %) | 300k (200k–400k) |",
		"| layout | msg/s | hub1 | hub2 | nats0 | nats1 | nats2 | hub, total | nats, total |",
		"| 1 replica | 100 | 60 % · 6.00 µs | — | 2 % · 0.20 µs | 1 % · 0.10 µs | 3 % · 0.30 µs | 60 % · 6.00 µs | 6 % · 0.60 µs |",
		"| 2 replicas | 100 | 40 % · 4.00 µs | 30 % · 3.00 µs | 2 % · 0.20 µs | 2 % · 0.20 µs | 4 % · 0.40 µs | 70 % · 7.00 µs | 8 % · 0.80 µs |",
		"| 2 replicas | 400 | 85 % (80 %–90 %) · 3.12 µs | 90 % · 3.38 µs | — | — | — | 175 % (170 %–180 %) · 6.50 µs | — |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out, "### unpinned, 1000 subscribers") {
		t.Error("the cluster runs are in the matrix's tables too")
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}

	// From a file of its own: the main results have no cluster runs.
	dir := t.TempDir()
	clusterFile := filepath.Join(dir, "cluster.jsonl")
	for _, v := range append([]any{rs.Metas[0]}, anySlice(rs.Runs)...) {
		if err := appendJSONLine(clusterFile, v); err != nil {
			t.Fatal(err)
		}
	}
	mainFile := filepath.Join(dir, "main.jsonl")
	if err := appendJSONLine(mainFile, rs.Metas[0]); err != nil {
		t.Fatal(err)
	}
	if err := appendJSONLine(mainFile, run(transportWS, 100, 10e3, 1, 2000)); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, "report.md")
	if err := dispatch(t.Context(), []string{"report", "-in", mainFile, "-cluster", clusterFile, "-out", md}, nil, discardLog()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### pinned, 100 subscribers, 10k deliveries/s offered", "Results: `" + clusterFile + "`", "-notes bench/notes.md -cluster " + clusterFile + "`", "| 1 replica | 1000 | 100 | 100.00 % |"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("report from two files lacks %q", want)
		}
	}
	if err := dispatch(t.Context(), []string{"report", "-in", mainFile, "-cluster", filepath.Join(dir, "none.jsonl"), "-out", md}, nil, discardLog()); err == nil {
		t.Error("a missing -cluster file was accepted")
	}
}

func anySlice[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// TestWaitReady: hubbench wait takes http:// URLs and waits until they
// answer 200 (a replica's /readyz once it is connected upstream); it says
// what the URL last answered when it gives up, and dials loopback only.
func TestWaitReady(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) < 3 {
			http.Error(w, "upstream: connecting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	if err := dispatch(t.Context(), []string{"wait", "-timeout", "10s", srv.URL + "/readyz"}, nil, discardLog()); err != nil {
		t.Fatal(err)
	}
	if n := asked.Load(); n != 3 {
		t.Errorf("asked %d times, want 3 (twice 503, then 200)", n)
	}

	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream: connecting", http.StatusServiceUnavailable)
	}))
	defer never.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := dispatch(ctx, []string{"wait", "-timeout", "300ms", never.URL + "/readyz"}, nil, discardLog())
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable upstream: connecting") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait for a URL never ready: %v, want its last answer and the deadline", err)
	}
	for _, u := range []string{"http://192.0.2.1:80/readyz", "http:///readyz", "https://127.0.0.1:1/"} {
		if err := dispatch(ctx, []string{"wait", "-timeout", "1s", u}, nil, discardLog()); err == nil {
			t.Errorf("wait %s: accepted", u)
		}
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
