package history

import (
	"errors"
	"log/slog"
	"time"

	"github.com/motehub/motehub/internal/defaults"
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
	// QueueLen bounds the messages Add has queued and the recorder's
	// goroutine has not yet parsed; past it Add drops (Stats.Dropped).
	// Default 65536.
	QueueLen int
	// MaxPending bounds the raw points and text changes held in memory
	// until a write commits (about 40 bytes each); past it new ones are
	// dropped (Stats.PendingDropped) while rollups keep aggregating, and
	// closed rollups are held up to twice as many. Default 1<<20.
	MaxPending int
}

func (c *Config) setDefaults() {
	defaults.Set(&c.Raw, DefaultRaw)
	defaults.Set(&c.FiveMinute, DefaultFiveMinute)
	defaults.Set(&c.Hourly, DefaultHourly)
	defaults.Set(&c.MaxBytes, DefaultMaxBytes)
	defaults.Set(&c.MaxSeries, DefaultMaxSeries)
	defaults.Set(&c.QueueLen, 65536)
	defaults.Set(&c.MaxPending, 1<<20)
	if len(c.Filters) == 0 {
		c.Filters = []string{"#"}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
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
	// Truncated says that the answer was cut: at MaxPoints changes of a
	// text series, or after reading 2 M entries of a numeric one (a long
	// range of raw points), where it ends at the last entry read.
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
	Bytes         int64  // bytes of pages on disk (budget.go), within MaxBytes
	Evicted       uint64 // period buckets dropped for MaxBytes or retention
	// PendingDropped counts raw points, text changes and closed rollups
	// not recorded: MaxPending were waiting for a write.
	PendingDropped uint64
	// Future counts messages not recorded: their time was more than a
	// minute ahead of the recorder's clock (a clock that jumped back).
	Future uint64
	// Queued is how many messages Add queued that the recorder has not yet
	// applied; Pending, how many points, changes and rollups wait for a write.
	Queued  int
	Pending int
}

// ErrNoSeries is returned by Query for a series never recorded.
var ErrNoSeries = errors.New("no history of this series")

// ErrDamaged is returned (wrapped in a message naming the file) when a read
// of the history finds the store's file damaged.
var ErrDamaged = errors.New("the store file is damaged")

// ErrBadQuery is returned (wrapped, saying what is wrong) for a query that
// cannot be answered as asked: an empty range, an unknown resolution.
var ErrBadQuery = errors.New("bad history query")
