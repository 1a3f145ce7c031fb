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
	descMQTTRefusals    = prometheus.NewDesc("motehub_mqtt_refusals_total", "MQTT clients refused or disconnected, and subscriptions refused, by cause.", []string{"cause"}, nil)
	descMQTTSessions    = prometheus.NewDesc("motehub_mqtt_sessions", "MQTT sessions the broker keeps, connected or not.", nil, nil)
	descMQTTEnded       = prometheus.NewDesc("motehub_mqtt_sessions_ended_total", "MQTT sessions ended before their expiry: to make room for a new one, or because their user was removed.", nil, nil)
	descMQTTResumeDrops = prometheus.NewDesc("motehub_mqtt_resume_dropped_total", "What resumed MQTT sessions lost because their user may no longer read it, by kind.", []string{"kind"}, nil)
)

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMQTTConnections, descMQTTMessages, descMQTTBytes, descMQTTRetained, descMQTTSubs,
		descMQTTInflight, descMQTTRefusals, descMQTTSessions, descMQTTEnded, descMQTTResumeDrops} {
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
	counter(descMQTTRefusals, s.ConnectTimeouts, "connect_timeout")
	counter(descMQTTRefusals, s.WillsRefused, "will_topic")
	counter(descMQTTRefusals, s.ClientIDsRefused, "client_id")
	counter(descMQTTRefusals, s.SessionsRefused, "session_limit")
	counter(descMQTTRefusals, s.SubscriptionsRefused, "subscription_limit")
	counter(descMQTTResumeDrops, s.SubscriptionsDropped, "subscription")
	counter(descMQTTResumeDrops, s.QueuedDropped, "queued")
	ch <- prometheus.MustNewConstMetric(descMQTTEnded, prometheus.CounterValue, float64(s.SessionsEnded))
	ch <- prometheus.MustNewConstMetric(descMQTTSessions, prometheus.GaugeValue, float64(s.Sessions))
	ch <- prometheus.MustNewConstMetric(descMQTTRetained, prometheus.GaugeValue, float64(s.Retained))
	ch <- prometheus.MustNewConstMetric(descMQTTSubs, prometheus.GaugeValue, float64(s.Subscriptions))
	ch <- prometheus.MustNewConstMetric(descMQTTInflight, prometheus.GaugeValue, float64(s.Inflight))
}

// storeCollector turns the store's counters into metrics at each scrape.
type storeCollector struct{ s *broker.Store }

var (
	descStoreSyncs       = prometheus.NewDesc("motehub_store_writes_total", "Writes of the store's changes to --data that succeeded.", nil, nil)
	descStoreFailures    = prometheus.NewDesc("motehub_store_write_failures_total", "Writes to --data that failed (a full disk): their changes stay pending and are tried again.", nil, nil)
	descStoreSyncSeconds = prometheus.NewDesc("motehub_store_sync_seconds", "How long the last write to --data took.", nil, nil)
	descStorePending     = prometheus.NewDesc("motehub_store_pending", "Changes waiting to be written to --data, and their bytes.", []string{"unit"}, nil)
	descStoreLogDropped  = prometheus.NewDesc("motehub_store_log_dropped_total", "Event log records dropped, never written, to keep the pending changes within their bounds.", nil, nil)
	descStoreEvicted     = prometheus.NewDesc("motehub_store_topics_evicted_total", "Topics whose last value and history were dropped, the least recently updated first, to stay within --max-topics and --recent-bytes.", nil, nil)
	descStoreTopics      = prometheus.NewDesc("motehub_store_topics", "Topics kept in --data, and their bytes as --recent-bytes counts them.", []string{"unit"}, nil)
	descStoreDamaged     = prometheus.NewDesc("motehub_store_damaged", "1 when the file in --data was found damaged: nothing more is written to it.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStoreSyncs, descStoreFailures, descStoreSyncSeconds, descStorePending,
		descStoreLogDropped, descStoreEvicted, descStoreTopics, descStoreDamaged} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Stats()
	damaged := 0.0
	if s.Damaged {
		damaged = 1
	}
	ch <- prometheus.MustNewConstMetric(descStoreSyncs, prometheus.CounterValue, float64(s.Syncs))
	ch <- prometheus.MustNewConstMetric(descStoreFailures, prometheus.CounterValue, float64(s.SyncFailures))
	ch <- prometheus.MustNewConstMetric(descStoreSyncSeconds, prometheus.GaugeValue, s.LastSync.Seconds())
	ch <- prometheus.MustNewConstMetric(descStorePending, prometheus.GaugeValue, float64(s.Pending), "changes")
	ch <- prometheus.MustNewConstMetric(descStorePending, prometheus.GaugeValue, float64(s.PendingBytes), "bytes")
	ch <- prometheus.MustNewConstMetric(descStoreLogDropped, prometheus.CounterValue, float64(s.LogDropped))
	ch <- prometheus.MustNewConstMetric(descStoreEvicted, prometheus.CounterValue, float64(s.TopicsEvicted))
	ch <- prometheus.MustNewConstMetric(descStoreTopics, prometheus.GaugeValue, float64(s.Topics), "topics")
	ch <- prometheus.MustNewConstMetric(descStoreTopics, prometheus.GaugeValue, float64(s.TopicBytes), "bytes")
	ch <- prometheus.MustNewConstMetric(descStoreDamaged, prometheus.GaugeValue, damaged)
}
