package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
)

// jetstreamFeed is the hub's reading of the upstream's messages from a
// JetStream stream (--upstream-jetstream), in place of the MQTT
// subscriptions: event ids then carry the stream's positions, and a
// browser resumes on any replica (docs/scaling.md, "Resume across
// replicas"). Commands still go out through the upstream MQTT connection.
type jetstreamFeed struct {
	feed *broker.JetStreamFeed
	log  *slog.Logger
	hub  *bridge.Hub // set by start, before the feed reads
}

// openJetStream connects to --upstream-nats and checks --upstream-jetstream.
// It waits for NATS (at most broker.DefaultJetStreamStartTimeout): the
// stream's identity is the hub's epoch, which the hub needs to start.
func openJetStream(opts options, log *slog.Logger) (*jetstreamFeed, error) {
	j := &jetstreamFeed{log: log}
	feed, err := broker.OpenJetStream(context.Background(), broker.JetStreamConfig{
		URLs:     opts.UpstreamNATS,
		Stream:   opts.UpstreamJetStream,
		Username: opts.UpstreamUser,
		Password: opts.UpstreamPassword,
		OnFloor:  j.floor,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("--upstream-jetstream: %w", err)
	}
	j.feed = feed
	return j, nil
}

// hubConfig makes cfg a positional hub on the stream: every replica numbers
// events by the stream's positions under the stream's epoch, and follows
// everything (one subscription, made by New before the feed reads), so
// that it can resume any browser's filters from its first event on.
func (j *jetstreamFeed) hubConfig(cfg *bridge.Config) {
	cfg.Epoch, cfg.Positional = j.feed.Epoch(), true
	cfg.SubscribeOnDemand, cfg.BusFilters, cfg.KeepSubscribed = false, []string{"#"}, nil
}

// start begins reading, for hub.
func (j *jetstreamFeed) start(hub *bridge.Hub) error {
	j.hub = hub
	if err := j.feed.Start(context.Background()); err != nil {
		return fmt.Errorf("--upstream-jetstream: %w", err)
	}
	return nil
}

// floor is the feed's OnFloor: on the delivering goroutine, before the next
// message, the hub learns what it cannot vouch for.
func (j *jetstreamFeed) floor(floor uint64, hole bool) {
	reason := bridge.ResyncNotice{Code: bridge.ResyncBrokerConnected, Reason: "started on the stream's last values"}
	if hole {
		reason = bridge.ResyncNotice{Code: bridge.ResyncBrokerGap, Reason: "messages left the stream before this hub read them"}
	}
	j.hub.ResyncFrom(floor, reason)
}

func (j *jetstreamFeed) close(context.Context) error { return j.feed.Close() }

var (
	descFeedUp       = prometheus.NewDesc("motehub_upstream_jetstream_up", "1 while the JetStream stream (--upstream-jetstream) is read, else 0.", nil, nil)
	descFeedPosition = prometheus.NewDesc("motehub_upstream_jetstream_position", "The stream sequence of the last message read.", nil, nil)
	descFeedHoles    = prometheus.NewDesc("motehub_upstream_jetstream_holes_total", "Messages that left the stream before the hub read them: each hole resyncs the browsers.", nil, nil)
)

// Describe and Collect make the feed's metrics.
func (j *jetstreamFeed) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFeedUp
	ch <- descFeedPosition
	ch <- descFeedHoles
}

func (j *jetstreamFeed) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if j.feed.Ready() == nil {
		up = 1
	}
	s := j.feed.Stats()
	ch <- prometheus.MustNewConstMetric(descFeedUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descFeedPosition, prometheus.GaugeValue, float64(s.Position))
	ch <- prometheus.MustNewConstMetric(descFeedHoles, prometheus.CounterValue, float64(s.Holes))
}
