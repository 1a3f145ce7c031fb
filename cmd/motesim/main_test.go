package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/motesim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startBroker(t *testing.T) string {
	t.Helper()
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	b.Open()
	return b.Addr().String()
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	cfg, level, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := motesim.Config{
		Broker: motesim.DefaultBroker, Motes: motesim.DefaultMotes, Prefix: motesim.DefaultPrefix,
		ASNInterval: motesim.DefaultASNInterval, TemperatureInterval: motesim.DefaultTemperatureInterval,
		PIRInterval: motesim.DefaultPIRInterval, MaxReconnectInterval: motesim.DefaultMaxReconnectInterval,
		ReportInterval: motesim.DefaultReportInterval,
	}
	if !reflect.DeepEqual(cfg, want) || level != slog.LevelInfo {
		t.Errorf("defaults: %+v, %v; want %+v, INFO", cfg, level, want)
	}

	cfg, level, err = parseFlags([]string{
		"--broker", "tcp://10.0.0.1:1884", "--motes", "7", "--prefix", "lab/bench",
		"--asn-interval", "100ms", "--temperature-interval", "3s", "--pir-interval", "1m",
		"--max-reconnect-interval", "5s", "--seed", "99", "--log-level", "debug",
		"--devices", "tasmota,homie", "--report-interval", "30s",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want = motesim.Config{
		Broker: "tcp://10.0.0.1:1884", Motes: 7, Prefix: "lab/bench",
		ASNInterval: 100 * time.Millisecond, TemperatureInterval: 3 * time.Second, PIRInterval: time.Minute,
		MaxReconnectInterval: 5 * time.Second, Seed: 99,
		Devices: []string{"tasmota", "homie"}, ReportInterval: 30 * time.Second,
	}
	if !reflect.DeepEqual(cfg, want) || level != slog.LevelDebug {
		t.Errorf("flags: %+v, %v; want %+v, DEBUG", cfg, level, want)
	}
	if cfg, _, err := parseFlags([]string{"--devices", "none"}, io.Discard); err != nil || !cfg.NoDevices || cfg.Devices != nil {
		t.Errorf("--devices none: %+v, %v; want no devices", cfg, err)
	}

	for _, args := range [][]string{{"--motes", "0"}, {"--motes", "x"}, {"--log-level", "loud"}, {"--nope"}, {"extra"}} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	var help bytes.Buffer
	if _, _, err := parseFlags([]string{"--help"}, &help); err != flag.ErrHelp || !strings.Contains(help.String(), "--temperature-interval") ||
		!strings.Contains(help.String(), "--devices NAMES") || !strings.Contains(help.String(), "homeassistant, zigbee2mqtt, tasmota, homie") {
		t.Errorf("--help: %v\n%s", err, help.String())
	}
}

// TestRunPublishesAndStops: run starts the motes from the flags, and returns
// nil when its context ends.
func TestRunPublishesAndStops(t *testing.T) {
	addr := startBroker(t)
	sub := hubtest.ConnectMQTT(t, addr, "watcher")
	boots := hubtest.SubscribeMQTT(t, sub, "lab/+/boot", 1)
	out := &hubtest.LogBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--broker", addr, "--motes", "2", "--prefix", "lab", "--seed", "1"}, out)
	}()
	got := map[string]bool{}
	for range 2 {
		m := hubtest.Receive(t, boots, hubtest.Timeout, "a boot message")
		got[m.Topic] = true
	}
	if !got["lab/mote-1/boot"] || !got["lab/mote-2/boot"] {
		t.Errorf("boots on %v", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(hubtest.Timeout):
		t.Fatal("run did not return after its context ended")
	}
	if logs := out.String(); !strings.Contains(logs, "msg=connected") || !strings.Contains(logs, `msg="motes stopped"`) || !strings.Contains(logs, "seed=1") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestSIGINTExitsZero builds the real binary, lets it publish, and stops it as
// a terminal would: it must exit 0 promptly.
func TestSIGINTExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := hubtest.BuildBinary(t, "motesim")
	addr := startBroker(t)
	sub := hubtest.ConnectMQTT(t, addr, "watcher")
	boots := hubtest.SubscribeMQTT(t, sub, "nodes/+/boot", 1)

	cmd, out, exited := hubtest.StartProcess(t, bin, "--broker", "tcp://"+addr, "--motes", "1")
	hubtest.Receive(t, boots, hubtest.Timeout, "the mote's boot")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("motesim exited with %v after SIGINT\n%s", err, out)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("motesim still running 5 s after SIGINT\n%s", out)
	}
	t.Logf("exit 0 %v after SIGINT", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out.String(), `msg="motes stopped"`) {
		t.Errorf("no 'motes stopped' line:\n%s", out)
	}
}
