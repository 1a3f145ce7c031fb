package web

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/motehub/motehub/bridge"
)

// metricsHandler serves /metrics in the Prometheus text format from its own
// registry: the hub's counters, HTTP authentication failures, the Go
// runtime and the process, and extra collectors (the broker, the upstream).
// Collectors read counters at each scrape; nothing is counted for metrics
// on the message path.
func metricsHandler(hub *bridge.Hub, an *authn, extra []prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&hubCollector{hub: hub},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "motehub_http_auth_failures_total",
			Help: "HTTP requests with credentials that were refused (wrong password or token, or throttled).",
		}, func() float64 { return float64(an.failures.Load()) }),
	)
	reg.MustRegister(extra...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil})
}

// hubCollector turns bridge.Stats into metrics at each scrape.
type hubCollector struct{ hub *bridge.Hub }

var (
	descSessions   = prometheus.NewDesc("motehub_sessions", "Browser sessions open now, by transport.", []string{"transport"}, nil)
	descReceived   = prometheus.NewDesc("motehub_messages_received_total", "Messages the hub took from the MQTT side.", nil, nil)
	descDelivered  = prometheus.NewDesc("motehub_messages_delivered_total", "Messages queued to browser sessions (one per session per message), by transport.", []string{"transport"}, nil)
	descBytesOut   = prometheus.NewDesc("motehub_bytes_sent_total", "Bytes written to browser sessions, by transport.", []string{"transport"}, nil)
	descPublished  = prometheus.NewDesc("motehub_messages_published_total", "Messages browsers published to the devices, by source.", []string{"source"}, nil)
	descCloses     = prometheus.NewDesc("motehub_session_closes_total", "Browser sessions ended, by reason.", []string{"reason"}, nil)
	descSlow       = prometheus.NewDesc("motehub_slow_disconnects_total", "Browser sessions closed because they could not keep up.", nil, nil)
	descAcks       = prometheus.NewDesc("motehub_command_acks_total", "Commands acknowledged, by outcome.", []string{"outcome"}, nil)
	descRefusals   = prometheus.NewDesc("motehub_refusals_total", "Browser requests refused, by cause.", []string{"cause"}, nil)
	descLatency    = prometheus.NewDesc("motehub_delivery_latency_seconds", "Time from the hub taking a message to writing it to a browser's connection.", nil, nil)
	descBusSubs    = prometheus.NewDesc("motehub_bus_subscriptions", "Topic filters the hub is subscribed to on the MQTT side (with --upstream: what its clients want).", nil, nil)
	descCommands   = prometheus.NewDesc("motehub_commands_total", "Commands (through the device model, or raw with ack) by outcome: ok, or the code of the failure.", []string{"outcome"}, nil)
	descDevices    = prometheus.NewDesc("motehub_devices", "Devices the device model knows now.", nil, nil)
	descOverflows  = prometheus.NewDesc("motehub_device_model_overflows_total", "Times the device model fell behind its bounded queue (each followed by a rebuild from the last values).", nil, nil)
	descRebuilds   = prometheus.NewDesc("motehub_device_model_rebuilds_total", "Times the device model was rebuilt from the last values.", nil, nil)
	descRefused    = prometheus.NewDesc("motehub_device_model_refused_total", "What the device model refused at its bounds: devices (--max-devices), entities, topics, and discovery payloads oversized or malformed.", []string{"what"}, nil)
	descWaiting    = prometheus.NewDesc("motehub_commands_waiting", "Commands waiting for their devices' confirmation now.", nil, nil)
	hubDescriptors = []*prometheus.Desc{descSessions, descReceived, descDelivered, descBytesOut, descPublished, descCloses, descSlow, descAcks, descRefusals, descLatency, descBusSubs,
		descCommands, descDevices, descOverflows, descRebuilds, descRefused, descWaiting}
)

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range hubDescriptors {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.hub.Stats()
	byLabel := func(desc *prometheus.Desc, kind prometheus.ValueType, values map[string]uint64) {
		for label, v := range values {
			ch <- prometheus.MustNewConstMetric(desc, kind, float64(v), strings.ReplaceAll(label, " ", "_"))
		}
	}
	byLabel(descSessions, prometheus.GaugeValue, s.SessionsBy)
	byLabel(descDelivered, prometheus.CounterValue, s.DeliveredBy)
	byLabel(descBytesOut, prometheus.CounterValue, s.BytesOutBy)
	byLabel(descPublished, prometheus.CounterValue, s.PublishedBy)
	byLabel(descCloses, prometheus.CounterValue, s.Closes)
	byLabel(descAcks, prometheus.CounterValue, map[string]uint64{
		"ok": s.AcksOK, "timeout": s.AcksTimeout, "state_differs": s.AcksDiffer, "failed": s.AcksFailed,
	})
	byLabel(descRefusals, prometheus.CounterValue, map[string]uint64{
		"session_limit": s.SessionsRefused, "forbidden": s.Forbidden, "rate_limited": s.RateLimited,
	})
	ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(s.Received))
	ch <- prometheus.MustNewConstMetric(descSlow, prometheus.CounterValue, float64(s.SlowDisconnects))
	ch <- prometheus.MustNewConstMetric(descBusSubs, prometheus.GaugeValue, float64(s.BusSubscriptions))
	byLabel(descCommands, prometheus.CounterValue, s.Commands)
	ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(s.Devices))
	ch <- prometheus.MustNewConstMetric(descOverflows, prometheus.CounterValue, float64(s.ModelOverflows))
	ch <- prometheus.MustNewConstMetric(descRebuilds, prometheus.CounterValue, float64(s.ModelRebuilt))
	byLabel(descRefused, prometheus.CounterValue, s.ModelRefused)
	ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(s.CommandsWaiting))

	buckets := make(map[float64]uint64, len(s.Latency.Bounds))
	var cumulative uint64
	for i, bound := range s.Latency.Bounds[:len(s.Latency.Bounds)-1] { // the last is +Inf, implied
		cumulative += s.Latency.Counts[i]
		buckets[bound.Seconds()] = cumulative
	}
	ch <- prometheus.MustNewConstHistogram(descLatency, s.Latency.Count, s.Latency.Sum.Seconds(), buckets)
}
