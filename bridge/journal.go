package bridge

import (
	"encoding/json"
	"time"
)

// Record is one delivered message as a Journal keeps it.
type Record struct {
	Seq      uint64
	Topic    string          // absolute
	Payload  json.RawMessage // the JSON value frames carry: valid and compact, which a Journal may write as it is
	Time     time.Time
	Retained bool
	Cleared  bool // an empty retained message: the topic's last value is gone
	// Text says that the MQTT payload was plain text (valid UTF-8, not
	// JSON), which Payload carries as a JSON string: a session that asked
	// for "text" sees it as {"$text": "..."}, and the device model reads
	// the bytes.
	Text bool
}

// Journal keeps the hub's history across restarts (package broker's Store
// implements it). Record is called for every message delivered, in sequence
// order, under the fan-out lock: it must not block (queue, and write later).
type Journal interface {
	Record(r Record)
}

// Restored is the hub's history from an earlier run, given to New.
type Restored struct {
	// Epoch names the history, Seq is the last sequence number issued in it.
	// An empty Epoch starts a new history.
	Epoch string
	Seq   uint64
	// Log is the end of the event log, oldest first, without a gap up to
	// Seq. It is empty when the earlier run's ids cannot be honoured (after
	// a crash: then Epoch is a new one, and clients resuming get a resync).
	Log []Record
	// Values are the last value of each topic; History the recent messages
	// of each topic, oldest first.
	Values  []Record
	History []Record
}
