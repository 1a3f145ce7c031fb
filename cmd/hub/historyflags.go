package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/topics"
)

// historyFlags are the flags of the history on disk (history.Config).
func historyFlags(fs *flag.FlagSet, o *options) {
	o.HistoryRaw, o.HistoryFiveMinute, o.HistoryHourly = history.DefaultRaw, history.DefaultFiveMinute, history.DefaultHourly
	fs.Var(positiveDuration{&o.HistoryRaw}, "history-raw", "how long every recorded point is kept as it came (`DURATION`)")
	fs.Var(positiveDuration{&o.HistoryFiveMinute}, "history-5m", "how long the 5-minute rollups (min, max, mean, last, count) are kept (`DURATION`)")
	fs.Var(positiveDuration{&o.HistoryHourly}, "history-1h", "how long the hourly rollups are kept (`DURATION`)")
	fs.Int64Var(&o.HistoryBytes, "history-bytes", history.DefaultMaxBytes, "`BYTES` of disk the history in --data may take; past it the oldest data goes first (0: no history)")
	fs.IntVar(&o.HistorySeries, "history-series", history.DefaultMaxSeries, "series recorded (a topic's number, or one field of its JSON); past it new series are not recorded (`N`)")
	o.HistoryTopics = []string{"#"}
	fs.Var(&filterList{list: &o.HistoryTopics}, "history-topics", "MQTT topic `FILTER` whose messages are recorded (repeatable); with --upstream "+
		"the hub stays subscribed upstream to it, so that it records with no browser watching")
}

// checkHistory refuses history flags that cannot work.
func (o options) checkHistory() error {
	switch {
	case o.HistoryBytes < 0 || o.HistoryBytes > 0 && o.HistoryBytes < 1<<20:
		return fmt.Errorf("--history-bytes %d: 0 (no history) or at least 1048576 (1 MiB)", o.HistoryBytes)
	case o.HistorySeries < 1:
		return fmt.Errorf("--history-series %d: at least 1", o.HistorySeries)
	case o.HistoryRaw > o.HistoryFiveMinute || o.HistoryFiveMinute > o.HistoryHourly:
		return fmt.Errorf("--history-raw %v, --history-5m %v, --history-1h %v: each level is kept at least as long as the finer one before it",
			o.HistoryRaw, o.HistoryFiveMinute, o.HistoryHourly)
	case len(o.HistoryTopics) == 0:
		return errors.New("--history-topics: give at least one filter, such as #")
	}
	return nil
}

// historyOn says whether the hub records history: it needs --data, and a
// budget.
func (o options) historyOn() bool { return o.DataDir != "" && o.HistoryBytes > 0 }

// filterList is a repeatable flag of MQTT topic filters: the first one
// given replaces the default.
type filterList struct {
	list  *[]string
	given bool
}

func (f *filterList) String() string {
	if f == nil || f.list == nil {
		return ""
	}
	return strings.Join(*f.list, ",")
}

func (f *filterList) Set(v string) error {
	if err := topics.ValidateFilter(v); err != nil {
		return fmt.Errorf("not an MQTT topic filter: %w", err)
	}
	if strings.HasPrefix(v, "$share/") {
		return errors.New("a shared subscription ($share/) would record only some of the messages: give the filter itself")
	}
	if !f.given {
		*f.list, f.given = nil, true
	}
	*f.list = append(*f.list, v)
	return nil
}

// intAlias is a deprecated flag's value: it sets the same int as the flag
// that replaced it (the start's warning names it; see deprecated).
type intAlias struct{ n *int }

func (a intAlias) String() string { return "" } // no default of its own: the new flag's

func (a intAlias) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	*a.n = n
	return nil
}

// warnDeprecated logs, once at start, each deprecated flag given.
func warnDeprecated(o options, warn func(msg string, args ...any)) {
	for old, replacement := range deprecated {
		if o.explicit[old] {
			warn("--"+old+" is deprecated: use --"+replacement, "flag", old, "instead", replacement)
		}
	}
}

// historyLevels says, for logs, how long each level is kept.
func historyLevels(o options) string {
	return fmt.Sprintf("raw %v, 5m %v, 1h %v", o.HistoryRaw, o.HistoryFiveMinute, o.HistoryHourly)
}
