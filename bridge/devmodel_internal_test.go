package bridge

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/internal/devicetrace"
	"github.com/motehub/motehub/internal/hubtest"
)

// traceMessages reads every testdata/devices trace, in file order.
func traceMessages(t *testing.T) []devicetrace.Message {
	t.Helper()
	all, err := devicetrace.ReadDir("../testdata/devices")
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// waitModel waits until the model worker has applied every event delivered
// and sent the frames of what they changed.
func waitModel(t *testing.T, h *Hub) {
	t.Helper()
	hubtest.Eventually(t, 10*time.Second, func() bool {
		// working before the queue: a worker that took the queue is still
		// working when the queue reads empty.
		working := h.devices.working.Load()
		h.devices.qmu.Lock()
		queued := len(h.devices.queue)
		h.devices.qmu.Unlock()
		h.devices.mu.Lock()
		applied := h.devices.applied
		h.devices.mu.Unlock()
		return !working && !h.devices.working.Load() && queued == 0 && applied == h.fan.position()
	}, "the model worker never caught up")
}

// devicesJSON is devices as JSON, for comparisons.
func devicesJSON(t *testing.T, list []devices.Device) string {
	t.Helper()
	b, err := json.MarshalIndent(list, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lastOfEachTopic keeps each topic's last message, in the order of those:
// a stream that the last values describe fully.
func lastOfEachTopic(msgs []devicetrace.Message) []devicetrace.Message {
	last := map[string]int{}
	for i, m := range msgs {
		last[m.Topic] = i
	}
	var out []devicetrace.Message
	for i, m := range msgs {
		if last[m.Topic] == i {
			out = append(out, m)
		}
	}
	return out
}

// TestDeviceModelOverflowRebuilds: with the worker held up, the traces
// overflow the model's queue many times over; the worker then rebuilds from
// the last values and ends with the same devices as a model fed every
// message directly, and the queue never held more than its bound.
//
// The stream is each trace topic's last message: a rebuild starts from the
// last values, so what a model learns from earlier messages (a JSON leaf
// that later payloads dropped, the time of a message that is no longer
// last) cannot come back; this test is about the queue, the rebuild and the
// records after it, not that.
func TestDeviceModelOverflowRebuilds(t *testing.T) {
	const bound = 4
	rec := &recorder{}
	h := newTestHub(t, Config{DeviceQueue: bound, Observers: []Observer{rec}})
	msgs := lastOfEachTopic(traceMessages(t))

	h.devices.mu.Lock() // the worker stops at its next batch
	maxQueued := 0
	for _, m := range msgs {
		h.deliver(Message{Topic: m.Topic, Payload: m.Payload, Retain: m.Retain})
		h.devices.qmu.Lock()
		maxQueued = max(maxQueued, len(h.devices.queue))
		h.devices.qmu.Unlock()
	}
	h.devices.mu.Unlock()
	waitModel(t, h)

	if maxQueued > bound {
		t.Errorf("the model's queue held %d records, bound %d", maxQueued, bound)
	}
	if s := h.Stats(); s.ModelOverflows == 0 || s.ModelRebuilt == 0 {
		t.Fatalf("%d messages through a queue of %d: %d overflows, %d rebuilds; want some", len(msgs), bound, s.ModelOverflows, s.ModelRebuilt)
	}

	direct := devices.New(devices.Config{})
	for i, r := range rec.records { // delivered on this goroutine: no race
		direct.Apply(devices.Message{Topic: r.Topic, Payload: msgs[i].Payload, Retained: r.Retained, Time: r.Time})
	}
	want := direct.Devices()
	if len(want) == 0 {
		t.Fatal("the traces make no devices")
	}
	if got := h.devices.devices(); devicesJSON(t, got) != devicesJSON(t, want) {
		t.Errorf("after rebuilds the hub's model has\n%s\nwant, as a model fed directly:\n%s", devicesJSON(t, got), devicesJSON(t, want))
	}
	if got := h.Stats().Devices; got != int64(len(want)) {
		t.Errorf("Stats.Devices = %d, want %d", got, len(want))
	}
}

// TestDeviceModelFollowsWithoutOverflow: the same traces through the default
// queue apply without a rebuild.
func TestDeviceModelFollowsWithoutOverflow(t *testing.T) {
	h := newTestHub(t, Config{})
	for _, m := range traceMessages(t) {
		h.deliver(Message{Topic: m.Topic, Payload: m.Payload, Retain: m.Retain})
	}
	waitModel(t, h)
	if s := h.Stats(); s.ModelOverflows != 0 || s.ModelRebuilt != 0 || s.Devices == 0 {
		t.Fatalf("%d overflows, %d rebuilds, %d devices; want none, none, some", s.ModelOverflows, s.ModelRebuilt, s.Devices)
	}
}

// TestDeviceModelQueueBoundedInBytes: large payloads overflow the byte
// bound before the count bound.
func TestDeviceModelQueueBoundedInBytes(t *testing.T) {
	const maxBytes = 64 << 10
	h := newTestHub(t, Config{DeviceQueueBytes: maxBytes})
	payload := make([]byte, 10<<10)
	for i := range payload {
		payload[i] = 'x'
	}
	h.devices.mu.Lock()
	peak := 0
	for range 50 {
		h.deliver(Message{Topic: "big/payload", Payload: payload})
		h.devices.qmu.Lock()
		peak = max(peak, h.devices.bytes)
		h.devices.qmu.Unlock()
	}
	h.devices.mu.Unlock()
	waitModel(t, h)
	if peak > maxBytes {
		t.Errorf("the model's queue held %d bytes, bound %d", peak, maxBytes)
	}
	if h.Stats().ModelOverflows == 0 {
		t.Error("500 KB through a 64 KB queue with the worker held: no overflow")
	}
}
