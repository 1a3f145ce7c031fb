package broker

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
)

// At its bounds the pending log keeps its newest LogEntries records, in
// order, in an array of at most about twice that, which it keeps.
func TestBatchLogAtItsBoundsReusesItsArray(t *testing.T) {
	cfg := StoreConfig{LogEntries: 100}
	cfg.setDefaults()
	b := newBatch()
	at, payload := time.Now(), json.RawMessage(`1`)
	seq := uint64(0)
	add := func() {
		seq++
		b.appendLog(&cfg, bridge.Record{Seq: seq, Topic: "a/b", Payload: payload, Time: at})
	}
	for range 10_000 {
		add()
		if len(b.log) > cfg.LogEntries {
			t.Fatalf("%d records pending, past LogEntries %d", len(b.log), cfg.LogEntries)
		}
		if c := cap(b.logBase); c > 3*cfg.LogEntries {
			t.Fatalf("the log's array holds %d records, for %d", c, cfg.LogEntries)
		}
	}
	array := &b.logBase[0]
	for range 10 * cfg.LogEntries {
		add()
	}
	if &b.logBase[0] != array {
		t.Error("the log took a new array at its bounds")
	}
	for i, r := range b.log {
		if want := seq - uint64(cfg.LogEntries) + 1 + uint64(i); r.Seq != want {
			t.Fatalf("record %d is %d, want %d", i, r.Seq, want)
		}
	}
	if b.n != len(b.log) || b.logBytes != int64(len(b.log)*len("a/b1")) {
		t.Errorf("counted %d records, %d bytes; holds %d", b.n, b.logBytes, len(b.log))
	}
}

// The topics' changes of a committed write are kept, emptied, up to the
// bound, and filled again by the next batch's new topics.
func TestBatchRecyclesWrittenTopics(t *testing.T) {
	at := time.Now()
	written := newBatch()
	for i := range 10 {
		for j := range 5 {
			written.add(fmt.Sprintf("t/%d", i), bridge.Record{Seq: uint64(10*i + j + 1), Topic: fmt.Sprintf("t/%d", i), Payload: json.RawMessage(`"x"`), Time: at}, 120)
		}
	}
	next := newBatch()
	next.recycle(written, 4)
	if len(next.spare) != 4 {
		t.Fatalf("%d kept, want the bound 4", len(next.spare))
	}
	for _, pt := range next.spare {
		if len(pt.samples) != 0 || pt.bytes != 0 || pt.value.Payload != nil || pt.reset || pt.gone || pt.ifWritten {
			t.Fatalf("a kept change is not empty: %+v", pt)
		}
		if full := pt.samples[:cap(pt.samples)]; len(full) > 0 && full[0].Payload != nil {
			t.Fatal("a kept change still holds a payload")
		}
	}
	r := bridge.Record{Seq: 100, Topic: "u/1", Payload: json.RawMessage(`2`), Time: at}
	next.add("u/1", r, 120)
	if len(next.spare) != 3 {
		t.Errorf("%d kept after a new topic, want 3", len(next.spare))
	}
	pt := next.topics["u/1"]
	if len(pt.samples) != 1 || pt.samples[0].Seq != 100 || pt.value.Seq != 100 || pt.bytes != recordBytes(r) {
		t.Errorf("the refilled change: %+v", pt)
	}
	if next.n != 2 || next.bytes != int64(len("u/1"))+recordBytes(r) {
		t.Errorf("counted %d entries, %d bytes", next.n, next.bytes)
	}
}
