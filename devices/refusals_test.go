package devices

import (
	"fmt"
	"testing"
	"time"
)

// TestRefusals: Refusals gives Stats' refusal counters, without the counts
// that take a walk over the model.
func TestRefusals(t *testing.T) {
	m := New(Config{MaxDevices: 2})
	for i := range 5 {
		m.Apply(Message{Topic: fmt.Sprintf("lab/dev%d/temp", i), Payload: []byte(`{"t":21.5}`), Time: time.Now()})
	}
	s, r := m.Stats(), m.Refusals()
	if s.RefusedDevices == 0 || s.Devices != 2 {
		t.Fatalf("5 devices into a model of 2: stats %+v, want refusals and 2 devices", s)
	}
	s.Devices, s.Entities, s.Topics = 0, 0, 0
	if r != s {
		t.Fatalf("Refusals() = %+v, want %+v", r, s)
	}
}
