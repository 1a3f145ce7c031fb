package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/devicetrace"
	"github.com/motehub/motehub/internal/hubtest"
)

// deviceIDs is GET /api/devices as the ids of the devices.
func deviceIDs(t *testing.T, httpAddr string) []string {
	t.Helper()
	status, _, body := get(t, "GET", "http://"+httpAddr+"/api/devices", nil, "")
	var res struct{ Devices []struct{ ID string } }
	if err := json.Unmarshal([]byte(body), &res); err != nil || status != 200 {
		t.Fatalf("/api/devices = %d %s", status, body)
	}
	var ids []string
	for _, d := range res.Devices {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestDevicesSurviveARestart: a hub with --data that saw the HARDWARIO
// trace (published not retained, so that the broker keeps none of it) shows
// the same devices at once after a restart: the model starts from the
// restored last values. --max-devices bounds the model.
func TestDevicesSurviveARestart(t *testing.T) {
	msgs, err := devicetrace.ReadFile(filepath.Join("..", "..", "testdata", "devices", "hardwario.trace"))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	first := startHub(t, "--data", data, "--data-sync-interval", "50ms")
	device := hubtest.ConnectMQTT(t, first.MQTT, "node")
	for _, m := range msgs {
		hubtest.PublishMQTT(t, device, m.Topic, 1, false, m.Payload)
	}
	var before []string
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		before = deviceIDs(t, first.HTTP)
		return slices.Contains(before, "hardwario:node/kitchen") && slices.Contains(before, "hardwario:nodes/mote-1")
	}, "the hub never showed the HARDWARIO devices")
	device.Disconnect(0)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	second := startHub(t, "--data", data)
	if after := deviceIDs(t, second.HTTP); !slices.Equal(after, before) {
		t.Fatalf("after a restart /api/devices has %v, want at once %v", after, before)
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}

	bounded := startHub(t, "--data", data, "--max-devices", "1")
	if after := deviceIDs(t, bounded.HTTP); len(after) != 1 {
		t.Fatalf("with --max-devices 1, /api/devices has %v", after)
	}
	// The devices past the bound are counted (the trace has more than one).
	_, _, metrics := get(t, "GET", "http://"+bounded.HTTP+"/metrics", nil, "")
	if !regexp.MustCompile(`(?m)^motehub_device_model_refused_total\{what="devices"\} [1-9]`).MatchString(metrics) {
		t.Errorf("/metrics does not count the devices past --max-devices:\n%s", grepLines(metrics, "motehub_device_model"))
	}
}

// TestMaxDevicesFlag: --max-devices has its environment twin and config
// key, and refuses 0.
func TestMaxDevicesFlag(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "HUB_MAX_DEVICES" {
			return "7", true
		}
		return "", false
	}
	o, err := parseOptions(nil, env, &strings.Builder{})
	if err != nil || o.MaxDevices != 7 {
		t.Fatalf("HUB_MAX_DEVICES=7: %v, %d", err, o.MaxDevices)
	}
	if _, err := parseOptions([]string{"--max-devices", "0"}, func(string) (string, bool) { return "", false }, &strings.Builder{}); err == nil {
		t.Fatal("--max-devices 0 was taken")
	}
}
