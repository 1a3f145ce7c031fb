package devices

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/devicetrace"
)

var update = flag.Bool("update", false, "rewrite testdata/devices/*.golden.json")

// traceStart is the time of a trace's first message; each next one is a
// second later.
var traceStart = time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC)

// replay feeds a trace to a new model, one second apart.
func replay(t testing.TB, msgs []devicetrace.Message) *Model {
	t.Helper()
	m := New(Config{})
	for i, msg := range msgs {
		m.Apply(Message{Topic: msg.Topic, Payload: msg.Payload, Retained: msg.Retain, Time: traceStart.Add(time.Duration(i) * time.Second)})
	}
	return m
}

// TestGolden replays every testdata/devices/*.trace and compares the model's
// devices with <name>.golden.json (go test -run TestGolden -update rewrites them).
func TestGolden(t *testing.T) {
	t.Parallel()
	traces, err := filepath.Glob("../testdata/devices/*.trace")
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) == 0 {
		t.Fatal("no traces in testdata/devices")
	}
	for _, path := range traces {
		name := strings.TrimSuffix(filepath.Base(path), ".trace")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			msgs, err := devicetrace.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(replay(t, msgs).Devices(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(path, ".trace") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./devices -run TestGolden -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("devices of %s differ from %s (-update rewrites it):\n%s", path, golden, got)
			}
		})
	}
}
