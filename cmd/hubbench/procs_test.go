package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
)

func TestParseProcs(t *testing.T) {
	t.Parallel()
	got, err := parseProcs("12, 34", "hub1=56,nats0 = 78")
	if err != nil {
		t.Fatal(err)
	}
	want := []watchedProc{{"12", "12"}, {"34", "34"}, {"hub1", "56"}, {"nats0", "78"}}
	if !slices.Equal(got, want) {
		t.Errorf("parseProcs = %v, want %v", got, want)
	}
	if got, err := parseProcs("", ""); err != nil || len(got) != 0 {
		t.Errorf("parseProcs of nothing = %v, %v; want none, nil", got, err)
	}
	many := strings.Repeat("1,", maxProcs) + "1"
	for name, in := range map[string][2]string{
		"not a number":   {"12x", ""},
		"zero":           {"0", ""},
		"negative":       {"", "a=-3"},
		"no label":       {"", "=12"},
		"no =":           {"", "hub1"},
		"label twice":    {"", "a=1,a=2"},
		"pid as a label": {"7", "7=8"},
		"too many":       {"", strings.ReplaceAll(many, "1", "x=1")},
	} {
		if got, err := parseProcs(in[0], in[1]); err == nil {
			t.Errorf("%s: parseProcs(%q, %q) = %v, want an error", name, in[0], in[1], got)
		}
	}
}

// TestParseTargets: run's -sub, -pid and -procs, the old single forms
// included, and what is refused.
func TestParseTargets(t *testing.T) {
	t.Parallel()
	var old runConfig
	old.PubAddr = "127.0.0.1:2"
	if err := old.parseTargets("127.0.0.1:1", "42", ""); err != nil {
		t.Fatal(err)
	}
	if old.SubAddr != "127.0.0.1:1" || old.PID != "42" || len(old.SubAddrs) != 1 || len(old.Procs) != 1 {
		t.Errorf("single forms: %+v", old)
	}
	if got := old.subURL(); got != "ws://127.0.0.1:1/ws" {
		t.Errorf("subURL = %q", got)
	}
	var c runConfig
	c.PubAddr = "localhost:2"
	if err := c.parseTargets("127.0.0.1:1,[::1]:3", "", "hub1=10,hub2=11"); err != nil {
		t.Fatal(err)
	}
	if c.SubAddr != "127.0.0.1:1" || c.PID != "10" || c.addrOf(0) != "127.0.0.1:1" || c.addrOf(1) != "[::1]:3" || c.addrOf(4) != "127.0.0.1:1" {
		t.Errorf("lists: %+v", c)
	}
	for name, in := range map[string][3]string{
		"no sub":         {"", "1", ""},
		"remote sub":     {"127.0.0.1:1,192.0.2.1:80", "1", ""},
		"no port":        {"127.0.0.1", "1", ""},
		"no process":     {"127.0.0.1:1", "", ""},
		"bad process":    {"127.0.0.1:1", "", "hub1"},
		"too many addrs": {strings.Repeat("127.0.0.1:1,", maxSubAddrs+1), "1", ""},
	} {
		c := runConfig{PubAddr: "127.0.0.1:2"}
		if err := c.parseTargets(in[0], in[1], in[2]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	remotePub := runConfig{PubAddr: "192.0.2.1:1883"}
	if err := remotePub.parseTargets("127.0.0.1:1", "1", ""); err == nil {
		t.Error("a remote -pub was accepted")
	}
	idle := runConfig{Idle: true}
	if err := idle.parseTargets("127.0.0.1:1", "1", ""); err != nil {
		t.Errorf("an idle run needs no -pub: %v", err)
	}
}

// startReplicas starts the embedded broker and n hubs on it, each serving
// /ws on its own loopback address: n replicas of one deployment, in this
// process. It returns the broker's MQTT address and the hubs' HTTP ones.
func startReplicas(t *testing.T, n int) (mqttAddr string, httpAddrs []string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Logger: log, MessageRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	var hubs []*bridge.Hub
	var srvs []*httptest.Server
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, h := range hubs {
			_ = h.Close(ctx)
		}
		for _, s := range srvs {
			s.Close()
		}
		_ = b.Close(ctx)
	})
	for range n {
		hub, err := bridge.New(b, bridge.Config{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		hubs = append(hubs, hub)
		srv := httptest.NewServer(hubHandler{hub})
		srvs = append(srvs, srv)
		httpAddrs = append(httpAddrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	b.Open()
	return b.Addr().String(), httpAddrs
}

// readRuns reads the run records of a results file.
func readRuns(t *testing.T, path string) []result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := readResults(f)
	if err != nil {
		t.Fatal(err)
	}
	return rs.Runs
}

// TestRunOverReplicas: hubbench run with two subscriber addresses spreads
// the subscribers over both replicas round-robin and records what each
// address received; with -procs it records every process's CPU and memory,
// and the target's figures are their sums. The single forms (-sub ADDR
// -pid PID) record neither, as before.
func TestRunOverReplicas(t *testing.T) {
	mqttAddr, httpAddrs := startReplicas(t, 2)
	pid := strconv.Itoa(os.Getpid())
	out := filepath.Join(t.TempDir(), "runs.jsonl")
	common := []string{"-pub", mqttAddr, "-subs", "5", "-rate", "100", "-warmup", "300ms", "-measure", "1500ms",
		"-settle", "100ms", "-drain", "2s", "-parallel", "4", "-out", out}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	args := append([]string{"run", "-sub", strings.Join(httpAddrs, ","), "-procs", "hub1=" + pid + ",hub2=" + pid, "-layout", "2 replicas"}, common...)
	if err := dispatch(t.Context(), args, io.Discard, log); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"run", "-sub", httpAddrs[0], "-pid", pid}, common...)
	if err := dispatch(t.Context(), args, io.Discard, log); err != nil {
		t.Fatal(err)
	}
	runs := readRuns(t, out)
	if len(runs) != 2 {
		t.Fatalf("%d runs recorded, want 2", len(runs))
	}
	spread, single := runs[0], runs[1]
	if spread.Error != "" || spread.DeliveryRatio != 1 || spread.Layout != "2 replicas" {
		t.Fatalf("spread run: error %q, delivered %.4f, layout %q; want none, 1, \"2 replicas\"", spread.Error, spread.DeliveryRatio, spread.Layout)
	}
	if len(spread.SubAddrs) != 2 {
		t.Fatalf("spread run: %d addresses recorded, want 2", len(spread.SubAddrs))
	}
	perSub := spread.Delivered / 5
	for i, a := range spread.SubAddrs {
		wantSubs := []int{3, 2}[i] // subscribers 0, 2, 4 and 1, 3
		if a.Addr != httpAddrs[i] || a.Subscribers != wantSubs || a.Connected != wantSubs || a.Delivered != uint64(wantSubs)*perSub || a.Dropped != 0 {
			t.Errorf("address %d: %+v, want %s with %d subscribers, all connected, %d delivered", i, a, httpAddrs[i], wantSubs, uint64(wantSubs)*perSub)
		}
	}
	if len(spread.Procs) != 2 || spread.Procs[0].Label != "hub1" || spread.Procs[1].Label != "hub2" {
		t.Fatalf("spread run: processes %+v, want hub1 and hub2", spread.Procs)
	}
	var cpu float64
	var rss int64
	for _, p := range spread.Procs {
		if p.PID != pid || p.CPUSeconds <= 0 || p.RSSNoneKB <= 0 || p.RSSIdleKB <= 0 || p.RSSPeakKB < p.RSSIdleKB {
			t.Errorf("process %+v: want this PID, some CPU, its memory", p)
		}
		if want := p.CPUSeconds / spread.MeasureS; math.Abs(p.Cores-want) > 0.01 {
			t.Errorf("process %s: %.3f cores, want %.3f (CPU seconds per second of the window)", p.Label, p.Cores, want)
		}
		if want := p.CPUSeconds * 1e6 / float64(spread.Delivered); math.Abs(p.USPerDelivery-want) > 0.01 {
			t.Errorf("process %s: %.3f µs per delivery, want %.3f", p.Label, p.USPerDelivery, want)
		}
		cpu += p.CPUSeconds
		rss += p.RSSNoneKB
	}
	// The same process twice: the target's figures are the sum of both.
	if math.Abs(spread.TargetCPUSeconds-cpu) > 0.01 || spread.RSSNoneKB != rss {
		t.Errorf("target CPU %.3f s and RSS %d KB, want the processes' sums %.3f and %d", spread.TargetCPUSeconds, spread.RSSNoneKB, cpu, rss)
	}
	if single.Error != "" || single.DeliveryRatio != 1 || single.Procs != nil || single.SubAddrs != nil || single.Layout != "" {
		t.Errorf("single forms: error %q, delivered %.4f, procs %v, addresses %v, layout %q; want the record as before",
			single.Error, single.DeliveryRatio, single.Procs, single.SubAddrs, single.Layout)
	}
	// The JSON keeps the old record's shape for the single forms.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(lines[1]), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"procs", "sub_addrs", "layout"} {
		if _, ok := raw[k]; ok {
			t.Errorf("the single-form record has %q", k)
		}
	}
}
