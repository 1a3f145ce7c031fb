package main

import (
	"encoding/json"
	"testing"
)

func TestBenchPayload(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		seq  uint64
		sent int64
	}{{1, 1}, {123, 1732000000000000000}, {18446744073709551615, 9223372036854775807}} {
		p := appendBenchPayload(nil, c.seq, c.sent, 100)
		if len(p) != 100 {
			t.Errorf("payload of %d bytes, want 100: %s", len(p), p)
		}
		var v struct {
			S uint64 `json:"s"`
			T int64  `json:"t"`
			P string `json:"p"`
		}
		if err := json.Unmarshal(p, &v); err != nil || v.S != c.seq || v.T != c.sent {
			t.Errorf("payload %s decodes to %+v, %v", p, v, err)
		}
		seq, sent, ok := scanSeqTime(p)
		if !ok || seq != c.seq || sent != c.sent {
			t.Errorf("scanSeqTime(%s) = %d, %d, %v", p, seq, sent, ok)
		}
	}
}

func TestScanSeqTime(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		seq  uint64
		sent int64
		ok   bool
	}{
		{`["bench/t",{"s":7,"t":99,"p":"xx"}]`, 7, 99, true},
		{`data: ["bench/t",{"s":42,"t":1700000000000000000,"p":""}]`, 42, 1700000000000000000, true},
		{`["clown.talk/-/config/ok",{"ack":false,"session":"x"}]`, 0, 0, false},
		{`{"s":,"t":1}`, 0, 0, false},
		{`{"s":1}`, 0, 0, false},
		{`{"s":1,"t":99999999999999999999}`, 0, 0, false}, // past int64
		{``, 0, 0, false},
	}
	for _, c := range cases {
		seq, sent, ok := scanSeqTime([]byte(c.in))
		if ok != c.ok || (ok && (seq != c.seq || sent != c.sent)) {
			t.Errorf("scanSeqTime(%q) = %d, %d, %v; want %d, %d, %v", c.in, seq, sent, ok, c.seq, c.sent, c.ok)
		}
	}
}
