package broker

import (
	"encoding/json"
	"fmt"
	"slices"
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

// The log's array of a committed write, when the larger, takes the next
// batch's log: what came during the write, and room for more, no payload
// of the written records held.
func TestBatchRecyclesTheLogsArray(t *testing.T) {
	cfg := StoreConfig{LogEntries: 1000, HistoryBytes: 1 << 20}
	at := time.Now()
	rec := func(seq int) bridge.Record {
		return bridge.Record{Seq: uint64(seq), Topic: "a/b", Payload: json.RawMessage(`"x"`), Time: at}
	}
	written, next := newBatch(), newBatch()
	for i := range 500 {
		written.appendLog(&cfg, rec(i+1))
	}
	for i := range 3 { // during the write
		next.appendLog(&cfg, rec(501+i))
	}
	next.recycle(written, 10)
	if cap(next.log) < 500 || len(next.log) != 3 || next.log[0].Seq != 501 || next.log[2].Seq != 503 {
		t.Fatalf("the next log: %d records (cap %d) from %d; want its 3 in the written array", len(next.log), cap(next.log), next.log[0].Seq)
	}
	if rest := next.log[3:cap(next.log)]; slices.ContainsFunc(rest, func(r bridge.Record) bool { return r.Payload != nil }) {
		t.Fatal("the recycled array still holds payloads")
	}
	for i := range 1000 {
		next.appendLog(&cfg, rec(504+i))
	}
	if len(next.log) != 1000 || next.log[999].Seq != 1503 || next.n != 1000 {
		t.Fatalf("after 1000 more: %d records, the last %d, counted %d", len(next.log), next.log[len(next.log)-1].Seq, next.n)
	}
}
