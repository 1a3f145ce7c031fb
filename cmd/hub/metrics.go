package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/motehub/motehub/broker"
)

// brokerCollector turns the embedded broker's counters into metrics at each
// scrape (the broker package stays free of Prometheus).
type brokerCollector struct{ b *broker.Embedded }

var (
	descMQTTConnections = prometheus.NewDesc("motehub_mqtt_connections", "MQTT connections open now, by listener.", []string{"listener"}, nil)
	descMQTTMessages    = prometheus.NewDesc("motehub_mqtt_messages_total", "MQTT messages the broker received from clients, sent to clients, or dropped.", []string{"direction"}, nil)
	descMQTTBytes       = prometheus.NewDesc("motehub_mqtt_bytes_total", "Bytes the broker received and sent.", []string{"direction"}, nil)
	descMQTTRetained    = prometheus.NewDesc("motehub_mqtt_retained_messages", "Retained messages held by the broker.", nil, nil)
	descMQTTSubs        = prometheus.NewDesc("motehub_mqtt_subscriptions", "MQTT subscriptions held by the broker.", nil, nil)
	descMQTTInflight    = prometheus.NewDesc("motehub_mqtt_inflight_messages", "QoS 1 and 2 messages waiting for their acknowledgement.", nil, nil)
	descMQTTRefusals    = prometheus.NewDesc("motehub_mqtt_refusals_total", "MQTT clients refused or disconnected, by cause.", []string{"cause"}, nil)
)

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMQTTConnections, descMQTTMessages, descMQTTBytes, descMQTTRetained, descMQTTSubs, descMQTTInflight, descMQTTRefusals} {
		ch <- d
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	for listener, n := range s.Connections {
		ch <- prometheus.MustNewConstMetric(descMQTTConnections, prometheus.GaugeValue, float64(n), listener)
	}
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	counter(descMQTTMessages, s.MessagesReceived, "received")
	counter(descMQTTMessages, s.MessagesSent, "sent")
	counter(descMQTTMessages, s.MessagesDropped, "dropped")
	counter(descMQTTBytes, s.BytesReceived, "received")
	counter(descMQTTBytes, s.BytesSent, "sent")
	counter(descMQTTRefusals, s.AuthFailures, "auth")
	counter(descMQTTRefusals, s.ConnectionsRefused, "connection_limit")
	counter(descMQTTRefusals, s.RateLimited, "rate_limit")
	ch <- prometheus.MustNewConstMetric(descMQTTRetained, prometheus.GaugeValue, float64(s.Retained))
	ch <- prometheus.MustNewConstMetric(descMQTTSubs, prometheus.GaugeValue, float64(s.Subscriptions))
	ch <- prometheus.MustNewConstMetric(descMQTTInflight, prometheus.GaugeValue, float64(s.Inflight))
}
