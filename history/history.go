package history

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.etcd.io/bbolt"
)

// Defaults of Config.
const (
	DefaultRaw        = 48 * time.Hour
	DefaultFiveMinute = 30 * 24 * time.Hour
	DefaultHourly     = 2 * 365 * 24 * time.Hour
	DefaultMaxBytes   = 1 << 30
	DefaultMaxSeries  = 10000
	DefaultPoints     = 300
	MaxPoints         = 10000
)

// Config tunes a Recorder. The zero value of each field means its
// documented default.
type Config struct {
	// Raw, FiveMinute and Hourly are how long raw points, 5-minute rollups
	// and hourly rollups are kept. Defaults 48 h, 30 days, 2 years.
	Raw, FiveMinute, Hourly time.Duration
	// MaxBytes bounds the history on disk (--history-bytes): past it the
	// oldest data goes first. Default 1 GiB.
	MaxBytes int64
	// MaxSeries bounds the series recorded (a topic's number, or one
	// numeric or text field of a JSON payload); past it new series are not
	// recorded, and Stats counts them. Default 10000.
	MaxSeries int
	// Filters are the MQTT topic filters whose messages are recorded.
	// Default: ["#"].
	Filters []string
	// Now is the wall clock, for retention and for the hub's runs (gaps
	// where the hub was down). Default time.Now.
	Now func() time.Time
	// Logger receives the recorder's logs. Default: slog.Default().
	Logger *slog.Logger
}

// Resolution names a level of the history.
type Resolution string

const (
	Raw        Resolution = "raw"
	FiveMinute Resolution = "5m"
	Hourly     Resolution = "1h"
)

// Query asks for one series over a time range.
type Query struct {
	Topic string
	Field string // dotted JSON path; "" for the whole payload
	From  time.Time
	To    time.Time
	// Points is the most buckets answered (default DefaultPoints, at most
	// MaxPoints). The resolution is chosen from the range (see Recorder.Query).
	Points int
	// Resolution, when set, forces the level read.
	Resolution Resolution
}

// Point is one bucket of a numeric series (or one raw point, where
// Min = Max = Mean = Last and Count = 1), or one change of a text series.
type Point struct {
	Time  time.Time // the bucket's start, or the raw point's time
	Min   float64
	Max   float64
	Mean  float64
	Last  float64
	Count int64
	Text  string // text series only
}

// Gap is a span with no data: the hub was down, or the device silent.
type Gap struct {
	From, To time.Time
	Reason   string // "hub-down" or "silent"
}

// Result is one series over a range.
type Result struct {
	Topic      string
	Field      string
	Kind       string // "number" or "text"
	Resolution Resolution
	Step       time.Duration // width of a bucket; 0 for raw points
	From, To   time.Time
	Points     []Point // oldest first
	Gaps       []Gap   // oldest first
	// Truncated says that the answer was cut (at MaxPoints).
	Truncated bool
}

// SeriesInfo names one recorded series.
type SeriesInfo struct {
	Topic string
	Field string
	Kind  string // "number" or "text"
	First time.Time
	Last  time.Time
}

// Stats count what the recorder keeps and what it refused.
type Stats struct {
	Series        int
	SeriesRefused uint64 // series not recorded: past MaxSeries
	Dropped       uint64 // samples not recorded: the queue was full
	Bytes         int64  // estimated bytes on disk
	Evicted       uint64 // period buckets dropped for MaxBytes or retention
}

// ErrNoSeries is returned by Query for a series never recorded.
var ErrNoSeries = errors.New("no history of this series")

// Recorder keeps the history of numeric and text series in the store's
// bbolt file. It is a part of the store (Open, Pending, Write, Written are
// called by package broker's Store), and is told of every message by Add.
type Recorder struct {
	cfg Config
}

// New returns a Recorder; it starts recording when the store opens it.
func New(cfg Config) *Recorder { return &Recorder{cfg: cfg} }

// Add records one message: its time is the message's (a test may feed a
// month in seconds). Called under the hub's fan-out lock: O(1), never
// blocks. payload is the JSON value (text payloads as a JSON string, with
// text set); it is shared: read only.
func (r *Recorder) Add(topic string, payload []byte, t time.Time, text bool) {}

// Open creates the recorder's buckets and loads its index, in the
// transaction that opens the store, and marks the start of a run of the hub.
func (r *Recorder) Open(tx *bbolt.Tx) error { return errors.New("not built") }

// Pending says whether there is something to Write.
func (r *Recorder) Pending() bool { return false }

// Write writes what changed since the last Write that committed, in the
// store's sync transaction, and drops what retention and MaxBytes drop.
func (r *Recorder) Write(tx *bbolt.Tx) error { return errors.New("not built") }

// Written says whether the transaction of the last Write committed.
func (r *Recorder) Written(ok bool) {}

// Query answers one series over a range, at the resolution chosen from the
// range: the coarsest level whose step fits range/Points and whose
// retention covers From (see docs). Never holds Add for longer than O(1).
func (r *Recorder) Query(ctx context.Context, q Query) (*Result, error) {
	return nil, errors.New("not built")
}

// Export calls fn for every stored point of the series in [From, To),
// oldest first, without downsampling, at q.Resolution or, when it is
// empty, the resolution Query would choose; it returns the resolution read.
// It reads in one read transaction and stops at fn's first error. Gaps are
// not points: a caller that wants them asks Query.
func (r *Recorder) Export(ctx context.Context, q Query, fn func(Point) error) (Resolution, error) {
	return "", errors.New("not built")
}

// Series lists the series recorded of the topics filter matches.
func (r *Recorder) Series(filter string) []SeriesInfo { return nil }

// Stats reports what the recorder keeps.
func (r *Recorder) Stats() Stats { return Stats{} }

// Close stops the recorder's goroutine; the store writes what is pending
// in its last sync.
func (r *Recorder) Close() error { return nil }
