package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
)

// startHub starts the embedded broker and a hub serving /ws in this
// process, and returns the broker's MQTT and the hub's HTTP address.
func startHub(t *testing.T) (mqttAddr, httpAddr string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Logger: log, MessageRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := bridge.New(b, bridge.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b.Open()
	srv := httptest.NewServer(hubHandler{hub})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.Close(ctx)
		srv.Close()
		_ = b.Close(ctx)
	})
	return b.Addr().String(), strings.TrimPrefix(srv.URL, "http://")
}

// TestIngest: a short ingest run into a hub in this process delivers every
// window message to every dashboard, counts them once, and measures the
// target's CPU per message; with -overflow latest the dashboards ask for it
// and are not refused.
func TestIngest(t *testing.T) {
	mqttAddr, httpAddr := startHub(t)
	for _, overflow := range []string{"", "latest"} {
		cfg := ingestConfig{
			Target: "motehub", SubAddr: httpAddr, PubAddr: mqttAddr, PID: strconv.Itoa(os.Getpid()),
			Devices: 40, Dashboards: 2, Rate: 400, Payload: 100, Topics: "ingest/dev%d/data", Filter: "ingest/#",
			Transport: transportWS, Overflow: overflow, Senders: 3,
			Warmup: 300 * time.Millisecond, Measure: time.Second, Settle: 100 * time.Millisecond,
			MaxDrain: 2 * time.Second, Parallel: 8,
		}
		if err := cfg.check(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		res, err := runIngest(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		cancel()
		if err != nil {
			t.Fatalf("overflow %q: %v", overflow, err)
		}
		if res.DevicesConnected != 40 || res.DashboardsConnected != 2 {
			t.Fatalf("overflow %q: %d devices and %d dashboards connected, want 40 and 2", overflow, res.DevicesConnected, res.DashboardsConnected)
		}
		// About 400 messages in the 1 s window (the pacing loop runs in steps of 1 ms).
		if res.WindowMessages < 300 || res.WindowMessages > 500 {
			t.Errorf("overflow %q: %d messages in the window, want about 400", overflow, res.WindowMessages)
		}
		if res.Expected != 2*res.WindowMessages || res.Delivered != res.Expected || res.CutOff != 0 {
			t.Errorf("overflow %q: delivered %d of %d, %d cut off; want all, none", overflow, res.Delivered, res.Expected, res.CutOff)
		}
		if res.LatencyUs.Count != int64(res.Delivered) || res.CPUUsPerMessage <= 0 {
			t.Errorf("overflow %q: %d latencies for %d deliveries, %.1f µs CPU per message", overflow, res.LatencyUs.Count, res.Delivered, res.CPUUsPerMessage)
		}
	}
}

// TestIngestNoDashboards: without dashboards a run is sustained when the
// devices kept up, and -data-dir's files are sized at its end.
func TestIngestNoDashboards(t *testing.T) {
	mqttAddr, httpAddr := startHub(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"hub.db": 3000, "sub/x": 500} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := ingestConfig{
		Target: "motehub", Data: true, History: true, DataDir: dir,
		SubAddr: httpAddr, PubAddr: mqttAddr, PID: strconv.Itoa(os.Getpid()),
		Devices: 20, Dashboards: 0, Rate: 200, Payload: 100, Topics: "ingest/dev%d/data", Filter: "#",
		Transport: transportWS, Senders: 2,
		Warmup: 200 * time.Millisecond, Measure: 500 * time.Millisecond, Settle: 100 * time.Millisecond,
		MaxDrain: time.Second, Parallel: 8,
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := runIngest(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if res.WindowMessages == 0 || res.Expected != 0 || !res.Sustained || !res.History {
		t.Errorf("%d window messages, %d expected, sustained %v, history %v; want some, 0, true, true",
			res.WindowMessages, res.Expected, res.Sustained, res.History)
	}
	if res.DataBytes != 3500 {
		t.Errorf("data_bytes %d, want 3500", res.DataBytes)
	}
}

// TestIngestConfigChecked: flags that make no run are refused before any
// connection.
func TestIngestConfigChecked(t *testing.T) {
	good := ingestConfig{SubAddr: "127.0.0.1:1", PubAddr: "127.0.0.1:2", PID: "1", Devices: 1, Dashboards: 1,
		Senders: 1, Rate: 1, Measure: time.Second, Transport: transportWS, Topics: "d/%d"}
	if err := good.check(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*ingestConfig){
		"remote":       func(c *ingestConfig) { c.PubAddr = "192.0.2.1:1883" },
		"no pid":       func(c *ingestConfig) { c.PID = "" },
		"no devices":   func(c *ingestConfig) { c.Devices = 0 },
		"no rate":      func(c *ingestConfig) { c.Rate = 0 },
		"transport":    func(c *ingestConfig) { c.Transport = "mqtt-tcp" },
		"mqtt latest":  func(c *ingestConfig) { c.Transport, c.Overflow = transportMQTTWS, "latest" },
		"topics":       func(c *ingestConfig) { c.Topics = "d/x" },
		"two %":        func(c *ingestConfig) { c.Topics = "d/%d/%s" },
		"huge payload": func(c *ingestConfig) { c.Payload = 1 << 20 },
		"history only": func(c *ingestConfig) { c.History = true },
	} {
		c := good
		change(&c)
		if err := c.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// hubHandler serves the hub's WebSocket at /ws.
type hubHandler struct{ hub *bridge.Hub }

func (h hubHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.hub.ServeWebSocket(w, r, "")
}
