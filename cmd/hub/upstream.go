package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
)

// upstream is the hub's connection to an existing MQTT broker or cluster
// (--upstream), in place of the embedded broker.
type upstream struct {
	remote    *broker.Remote
	hub       atomic.Pointer[bridge.Hub] // set once the hub exists
	up        atomic.Bool
	losses    atomic.Uint64 // connections lost
	failovers atomic.Uint64 // connections made to another node than the last one
	lastNode  string        // the node of the last connection; only status uses it
}

// connectUpstream starts connecting to opts.Upstream, the nodes of one
// cluster, in the background. The
// hub it is given later (setHub) resyncs its clients every time the
// upstream becomes usable: after a gap, messages were lost; at the first
// connect, clients that came before it have nothing yet.
func connectUpstream(opts options, log *slog.Logger) (*upstream, error) {
	u := &upstream{}
	cfg := broker.RemoteConfig{
		URLs:           opts.Upstream,
		Protocol:       opts.UpstreamProtocol,
		Username:       opts.UpstreamUser,
		Password:       opts.UpstreamPassword,
		ClientIDPrefix: opts.UpstreamClientID,
		Logger:         log,
		OnStatus:       u.status,
	}
	if opts.UpstreamCA != "" {
		pem, err := os.ReadFile(opts.UpstreamCA)
		if err != nil {
			return nil, fmt.Errorf("--upstream-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--upstream-ca %s: no PEM certificate in it", opts.UpstreamCA)
		}
		cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	r, err := broker.ConnectRemote(cfg)
	if err != nil {
		return nil, fmt.Errorf("--upstream: %w", err)
	}
	u.remote = r
	log.Info("connecting to the upstream broker", "url", r.URL(), "nodes", strings.Join(r.URLs(), ","), "mqtt", r.Protocol(), "client_id", r.ClientID())
	return u, nil
}

func (u *upstream) setHub(h *bridge.Hub) { u.hub.Store(h) }

// responseFilter covers the topics on which MQTT 5 devices answer the hubs'
// commands (motehub/response/<epoch>, bridge.Hub). A replica speaking MQTT 5
// upstream stays subscribed to it, so that a device's answer with the
// command's correlation data confirms the command, as on the embedded
// broker (which sees every message). It covers every replica's topic: each
// replica takes only the answers to its own commands, and drops the others'.
const responseFilter = "motehub/response/+"

// keepSubscribed are the filters the hub stays subscribed to upstream,
// besides the history's.
func (u *upstream) keepSubscribed() []string {
	if u.remote.Protocol() == 5 {
		return []string{responseFilter}
	}
	return nil
}

// status is the Remote's OnStatus: it runs on the Remote's goroutine and
// returns quickly (a resync queues frames; it waits for no client).
func (u *upstream) status(s broker.Status) {
	if !s.Up {
		if u.up.Swap(false) {
			u.losses.Add(1)
		}
		return
	}
	u.up.Store(true)
	failover := u.lastNode != "" && u.lastNode != s.URL
	if failover {
		u.failovers.Add(1)
	}
	u.lastNode = s.URL
	h := u.hub.Load()
	if h == nil {
		return
	}
	reason := bridge.ResyncNotice{Code: bridge.ResyncBrokerConnected, Reason: "connected to the broker"}
	switch {
	case failover:
		reason = bridge.ResyncNotice{Code: bridge.ResyncBrokerGap, Reason: "the connection to the broker was lost and the hub is on another node of its cluster: messages published meanwhile did not arrive"}
	case s.Gap:
		reason = bridge.ResyncNotice{Code: bridge.ResyncBrokerGap, Reason: "the connection to the broker was lost and is back: messages published meanwhile did not arrive"}
	}
	h.Resync(reason)
}

var (
	descUpstreamUp     = prometheus.NewDesc("motehub_upstream_up", "1 while the upstream broker (--upstream) is connected and every subscription made, else 0.", nil, nil)
	descUpstreamLosses = prometheus.NewDesc("motehub_upstream_disconnects_total", "Connections to the upstream broker that were lost.", nil, nil)
	descFailovers      = prometheus.NewDesc("motehub_upstream_failovers_total", "Connections made to another node of the upstream cluster (--upstream with several URLs) than the previous connection's.", nil, nil)
)

// Describe and Collect make the upstream's state metrics.
func (u *upstream) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUpstreamUp
	ch <- descUpstreamLosses
	ch <- descFailovers
}

func (u *upstream) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if u.remote.Ready() == nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUpstreamUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descUpstreamLosses, prometheus.CounterValue, float64(u.losses.Load()))
	ch <- prometheus.MustNewConstMetric(descFailovers, prometheus.CounterValue, float64(u.failovers.Load()))
}
