package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/history"
)

// newRecorder is the history's recorder of the flags, or nil when the hub
// keeps no history (no --data, or --history-bytes 0). The store opens it,
// as one of its parts.
func newRecorder(opts options, log *slog.Logger) *history.Recorder {
	if !opts.historyOn() {
		return nil
	}
	return history.New(history.Config{
		Raw:        opts.HistoryRaw,
		FiveMinute: opts.HistoryFiveMinute,
		Hourly:     opts.HistoryHourly,
		MaxBytes:   opts.HistoryBytes,
		MaxSeries:  opts.HistorySeries,
		Filters:    opts.HistoryTopics,
		Logger:     log,
	})
}

// historyDamaged is what the hub says when the history's part of the
// store file is damaged (err, from the store): what it does, and how to
// have the history back.
func historyDamaged(opts options, err error) error {
	return fmt.Errorf("the hub keeps no history this run: %w; to drop the damaged history and keep the rest (sessions, retained and recent messages), stop the hub and run: hub store drop-history %s", err, opts.DataDir)
}

// closeRecorder is the recorder's stop: after the hub's (no more Add),
// before the store's (whose last sync writes what the recorder holds).
func closeRecorder(r *history.Recorder) func(context.Context) error {
	return func(context.Context) error { return r.Close() }
}

// historyObserver tells the recorder of every message the hub delivers
// (bridge.Observer): under the fan-out lock, and Add is O(1). An empty
// retained message (Cleared) is no value, and the broker's own topics
// ($SYS/...) are not the devices'.
type historyObserver struct{ r *history.Recorder }

func (o historyObserver) Observe(r bridge.Record) {
	if r.Cleared || strings.HasPrefix(r.Topic, "$") {
		return
	}
	o.r.Add(r.Topic, r.Payload, r.Time, r.Text)
}

// historyCollector turns the recorder's counters into metrics at each
// scrape.
type historyCollector struct{ r *history.Recorder }

var (
	descHistorySeries  = prometheus.NewDesc("motehub_history_series", "Series the history records (a topic's number, or one field of its JSON).", nil, nil)
	descHistoryRefused = prometheus.NewDesc("motehub_history_series_refused_total", "New series not recorded: past --history-series.", nil, nil)
	descHistoryDropped = prometheus.NewDesc("motehub_history_dropped_total", "Values not recorded: the recorder's queue was full.", nil, nil)
	descHistoryBytes   = prometheus.NewDesc("motehub_history_bytes", "Bytes of pages the history occupies in --data (measured, and estimated since), within --history-bytes.", nil, nil)
	descHistoryFuture  = prometheus.NewDesc("motehub_history_future_total", "Values not recorded: their time was more than a minute ahead of the hub's clock (a clock that jumped back).", nil, nil)
	descHistoryEvicted = prometheus.NewDesc("motehub_history_evicted_total", "Periods of history dropped, the oldest first, for --history-bytes or the levels' retention.", nil, nil)
)

func (c historyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHistorySeries, descHistoryRefused, descHistoryDropped, descHistoryBytes, descHistoryEvicted, descHistoryFuture} {
		ch <- d
	}
}

func (c historyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	ch <- prometheus.MustNewConstMetric(descHistorySeries, prometheus.GaugeValue, float64(s.Series))
	ch <- prometheus.MustNewConstMetric(descHistoryRefused, prometheus.CounterValue, float64(s.SeriesRefused))
	ch <- prometheus.MustNewConstMetric(descHistoryDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(descHistoryBytes, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(descHistoryEvicted, prometheus.CounterValue, float64(s.Evicted))
	ch <- prometheus.MustNewConstMetric(descHistoryFuture, prometheus.CounterValue, float64(s.Future))
}
