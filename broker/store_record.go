package broker

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
)

// storedRecord is a record as the file keeps it: JSON, in the log, the
// last values and the history alike.
type storedRecord struct {
	Seq      uint64          `json:"s"`
	Topic    string          `json:"t"`
	Payload  json.RawMessage `json:"p"`
	Time     time.Time       `json:"at"`
	Retained bool            `json:"r,omitempty"`
	Cleared  bool            `json:"c,omitempty"`
	Text     bool            `json:"x,omitempty"` // bridge.Record.Text
}

func readRecords(b *bbolt.Bucket, out *[]bridge.Record) error {
	return b.ForEach(func(_, v []byte) error {
		var r storedRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("a damaged record: %w", err)
		}
		*out = append(*out, bridge.Record{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained, Cleared: r.Cleared, Text: r.Text})
		return nil
	})
}

// appendRecord appends r as the file keeps it: the bytes json.Marshal
// gives of its storedRecord, written by hand (a sync writes tens of
// thousands; BenchmarkStoreIngest), but for the payload. r.Payload is a
// JSON value, compact, as the hub gives it (bridge.Record), and is written
// as it is, where json.Marshal would escape <, >, & and U+2028/U+2029 in
// its strings: the same value. A topic with bytes JSON escapes, or a time
// JSON cannot carry, takes json.Marshal's way.
func appendRecord(dst []byte, r bridge.Record) []byte {
	if !plainTopic(r.Topic) || r.Time.Year() < 0 || r.Time.Year() > 9999 {
		b, err := json.Marshal(storedRecord{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained, Cleared: r.Cleared, Text: r.Text})
		if err != nil { // a payload that is not JSON, or a year JSON cannot carry
			b, _ = json.Marshal(storedRecord{Seq: r.Seq, Topic: r.Topic, Payload: json.RawMessage("null"), Retained: r.Retained, Cleared: r.Cleared, Text: r.Text})
		}
		return append(dst, b...)
	}
	dst = append(dst, `{"s":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"t":"`...)
	dst = append(dst, r.Topic...)
	dst = append(dst, `","p":`...)
	if len(r.Payload) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, r.Payload...)
	}
	dst = append(dst, `,"at":"`...)
	dst = r.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if r.Retained {
		dst = append(dst, `,"r":true`...)
	}
	if r.Cleared {
		dst = append(dst, `,"c":true`...)
	}
	if r.Text {
		dst = append(dst, `,"x":true`...)
	}
	return append(dst, '}')
}

// plainTopic says whether json.Marshal writes topic as it is: printable
// ASCII but for the characters it escapes.
func plainTopic(topic string) bool {
	for i := range len(topic) {
		switch c := topic[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// encodedRecords encodes each record of a write once: the log and the
// topics' history hold the same records, and a topic's last value is its
// newest sample. The encodings, and the keys, are cut from chunks of
// memory, for the write's transaction (bbolt keeps what Put is given until
// the commit): a few allocations per write, not a few per record.
type encodedRecords struct {
	buf   []byte          // the current chunk
	log   []bridge.Record // the batch's log, in sequence order
	enc   [][]byte        // the encoding of each
	parts [][]byte        // the records of a chunk of recent messages, for chunk
}

// chunkSize is the size of the chunks encodedRecords cuts from: large
// enough that a write of 40,000 records takes a few dozen.
const chunkSize = 256 << 10

// recordOverhead bounds what appendRecord adds to a record's topic and
// payload on its usual way: the field names, a sequence number, a time.
const recordOverhead = 128

// newEncodedRecords encodes the log's records.
func newEncodedRecords(log []bridge.Record) *encodedRecords {
	e := &encodedRecords{log: log, enc: make([][]byte, len(log))}
	for i, r := range log {
		e.enc[i] = e.record(r)
	}
	return e
}

// reserve makes room for n bytes in the current chunk, or starts another:
// what was cut from the earlier one stays where it is.
func (e *encodedRecords) reserve(n int) {
	if cap(e.buf)-len(e.buf) < n {
		e.buf = make([]byte, 0, max(n, chunkSize))
	}
}

// cut is what the current chunk gained since start.
func (e *encodedRecords) cut(start int) []byte { return e.buf[start:len(e.buf):len(e.buf)] }

// record is a new encoding of r.
func (e *encodedRecords) record(r bridge.Record) []byte {
	e.reserve(len(r.Topic) + len(r.Payload) + recordOverhead)
	start := len(e.buf)
	e.buf = appendRecord(e.buf, r) // past the room reserved (escapes), a copy: the cut holds it
	return e.cut(start)
}

// logRecord is the encoding of the log's ith record.
func (e *encodedRecords) logRecord(i int) []byte { return e.enc[i] }

// of is r's encoding: the log's when the log holds r (the same sequence
// number and topic), otherwise a new one.
func (e *encodedRecords) of(r bridge.Record) []byte {
	i, ok := slices.BinarySearchFunc(e.log, r.Seq, func(l bridge.Record, seq uint64) int { return cmp.Compare(l.Seq, seq) })
	if ok && e.log[i].Topic == r.Topic {
		return e.enc[i]
	}
	return e.record(r)
}

// chunk is the chunk (see appendChunk) of records rs, one topic's recent
// messages, each encoded as by of.
func (e *encodedRecords) chunk(rs []bridge.Record) []byte {
	e.parts = e.parts[:0]
	for _, r := range rs {
		e.parts = append(e.parts, e.of(r))
	}
	return e.chunkOf(e.parts)
}

// chunkOf is the chunk (see appendChunk) of the encoded records encs.
func (e *encodedRecords) chunkOf(encs [][]byte) []byte {
	e.reserve(chunkLen(encs))
	start := len(e.buf)
	e.buf = appendChunk(e.buf, encs)
	return e.cut(start)
}

// seqKey is the key of the record numbered seq in the log (and of a chunk
// of recent messages).
func (e *encodedRecords) seqKey(seq uint64) []byte {
	e.reserve(8)
	start := len(e.buf)
	e.buf = binary.BigEndian.AppendUint64(e.buf, seq)
	return e.cut(start)
}
