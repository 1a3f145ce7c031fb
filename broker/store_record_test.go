package broker

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
)

// appendRecord writes what json.Marshal writes of the record (for
// payloads without what json.Marshal escapes: see the next test): files
// keep reading the same, whichever wrote them.
func TestAppendRecordIsJSONMarshal(t *testing.T) {
	at := time.Date(2026, 12, 3, 16, 37, 3, 123456789, time.UTC)
	records := []bridge.Record{
		{Seq: 1, Topic: "bench/dev1/data", Payload: json.RawMessage(`{"s":1,"p":"xx"}`), Time: at},
		{Seq: 18446744073709551615, Topic: "a", Payload: json.RawMessage(`21.5`), Time: at.Truncate(time.Second), Retained: true, Text: true},
		{Seq: 3, Topic: "t", Payload: json.RawMessage(`""`), Time: at.In(time.FixedZone("x", 3600+1800)), Retained: true, Cleared: true},
		{Seq: 4, Topic: "home/<kitchen>&\"quoted\"\\", Payload: json.RawMessage(`[1,2]`), Time: at},
		{Seq: 5, Topic: "maison/cuisine/température\u2028\x01", Payload: json.RawMessage(`"é"`), Time: at},
		{Seq: 6, Topic: "invalid/\xff/utf8", Payload: json.RawMessage(`null`), Time: at},
		{Seq: 7, Topic: "", Payload: nil, Time: time.Time{}},
		{Seq: 8, Topic: "year/10000", Payload: json.RawMessage(`1`), Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Seq: 9, Topic: "text", Payload: json.RawMessage(`"plain text, \"quoted\" \u003c"`), Time: at, Text: true},
	}
	for _, r := range records {
		want, err := json.Marshal(storedRecord{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained, Cleared: r.Cleared, Text: r.Text})
		if err != nil {
			want, _ = json.Marshal(storedRecord{Seq: r.Seq, Topic: r.Topic, Payload: json.RawMessage("null"), Retained: r.Retained, Cleared: r.Cleared, Text: r.Text})
		}
		got := appendRecord([]byte("prefix"), r)
		if string(got) != "prefix"+string(want) {
			t.Errorf("record %d:\n got %s\nwant prefix%s", r.Seq, got, want)
		}
		var back storedRecord
		if err := json.Unmarshal(got[len("prefix"):], &back); err != nil {
			t.Errorf("record %d does not read back: %v", r.Seq, err)
		}
	}
}

// A payload is written as the hub gave it, where json.Marshal would
// escape <, >, & and U+2028/U+2029 in its strings: the record reads back
// the same as json.Marshal's, its payload the same JSON value (the bytes
// the device sent, not json.Marshal's escapes of them).
func TestAppendRecordKeepsThePayloadsBytes(t *testing.T) {
	at := time.Date(2026, 12, 3, 16, 37, 3, 123456789, time.UTC)
	for i, payload := range []string{`"<b>fish & chips</b>"`, `{"html":"a<b>c","sep":"\u2028 and   "}`, `["&"]`} {
		r := bridge.Record{Seq: uint64(i + 1), Topic: "page/html", Payload: json.RawMessage(payload), Time: at, Text: true}
		marshalled, err := json.Marshal(storedRecord{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload, Time: r.Time, Text: r.Text})
		if err != nil {
			t.Fatal(err)
		}
		var got, want storedRecord
		if err := json.Unmarshal(appendRecord(nil, r), &got); err != nil {
			t.Fatalf("payload %s: %v", payload, err)
		}
		if err := json.Unmarshal(marshalled, &want); err != nil {
			t.Fatal(err)
		}
		if string(got.Payload) != payload {
			t.Errorf("payload %s read back as %s", payload, got.Payload)
		}
		var gotValue, wantValue any
		if json.Unmarshal(got.Payload, &gotValue) != nil || json.Unmarshal(want.Payload, &wantValue) != nil ||
			!reflect.DeepEqual(gotValue, wantValue) {
			t.Errorf("payload %s: %s, json.Marshal's %s: not the same value", payload, got.Payload, want.Payload)
		}
		got.Payload, want.Payload = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("payload %s: the record reads back as %+v, json.Marshal's as %+v", payload, got, want)
		}
	}
}

// A write encodes a record the log and a topic's history share once, and
// gives each record its own encoding.
func TestEncodedRecordsShareTheLogs(t *testing.T) {
	at := time.Now()
	log := []bridge.Record{
		{Seq: 10, Topic: "a", Payload: json.RawMessage(`1`), Time: at},
		{Seq: 11, Topic: "b", Payload: json.RawMessage(`2`), Time: at},
		{Seq: 13, Topic: "a", Payload: json.RawMessage(`3`), Time: at},
	}
	e := newEncodedRecords(log)
	for i, r := range log {
		if got, want := string(e.logRecord(i)), string(appendRecord(nil, r)); got != want {
			t.Errorf("log record %d: %s, want %s", i, got, want)
		}
		if got := e.of(r); &got[0] != &e.logRecord(i)[0] {
			t.Errorf("record %d encoded again", r.Seq)
		}
	}
	older := bridge.Record{Seq: 9, Topic: "a", Payload: json.RawMessage(`0`), Time: at}
	other := bridge.Record{Seq: 11, Topic: "c", Payload: json.RawMessage(`4`), Time: at} // not the log's 11
	for _, r := range []bridge.Record{older, other} {
		if got, want := string(e.of(r)), string(appendRecord(nil, r)); got != want {
			t.Errorf("record %d %s: %s, want %s", r.Seq, r.Topic, got, want)
		}
	}
	for i, r := range log { // still intact
		if got, want := string(e.logRecord(i)), string(appendRecord(nil, r)); got != want {
			t.Errorf("log record %d after more: %s, want %s", i, got, want)
		}
	}
}
