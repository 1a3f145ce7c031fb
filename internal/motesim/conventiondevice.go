package motesim

import (
	"context"
	"log/slog"
	"time"
)

// conventionDevice runs a convention over MQTT, as a mote runs: the
// convention is touched only by the goroutine running
// [conventionDevice.run]; paho's callbacks reach it through its link,
// without blocking.
type conventionDevice struct {
	cfg  *Config
	conv convention
	log  *slog.Logger
	link *link[delivery] // the MQTT connection
}

// delivery is a message that arrived on one of the device's subscriptions.
type delivery struct {
	topic   string
	payload []byte
}

func newConventionDevice(cfg *Config, conv convention, log *slog.Logger) *conventionDevice {
	log = log.With("device", conv.name())
	var will *message
	if w, ok := conv.will(); ok {
		will = &w
	}
	// The convention obeys on the device's goroutine: the callback only
	// hands the message over.
	deliver := func(topic string, payload []byte) (delivery, error) {
		return delivery{topic: topic, payload: payload}, nil
	}
	return &conventionDevice{
		cfg:  cfg,
		conv: conv,
		log:  log,
		link: newLink(cfg, conv.name(), log, will, conv.subscriptions(), deliver),
	}
}

// run is the device's life: it connects, then announces itself after each
// connect, reports and obeys until ctx ends, then says goodbye, disconnects
// and waits for its callbacks to return.
func (d *conventionDevice) run(ctx context.Context) {
	d.link.connect()
	defer d.link.stop(d.conv.goodbye)

	report := time.NewTicker(d.cfg.ReportInterval)
	defer report.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case <-d.link.wake:
			d.link.await()
		case <-d.link.subDone:
			d.announce(d.link.subscribed())
		case <-d.link.subLate:
			d.announce(d.link.late())
		case c := <-d.link.commands:
			answer, err := d.conv.obey(c.topic, c.payload)
			if err != nil {
				d.log.Debug("command ignored", "topic", c.topic, "err", err)
				break
			}
			d.log.Debug("command", "topic", c.topic)
			d.publish(answer)
		case now := <-report.C:
			if d.link.online() {
				d.publish(d.conv.report(now))
			}
			d.link.reap(now)
		}
	}
}

// announce publishes what the device says after connecting, once per
// connection, and lets telemetry flow on that connection.
func (d *conventionDevice) announce(conn uint64) {
	if !d.link.announcing(conn) {
		return // that connection is gone; the next one announces itself
	}
	d.publish(d.conv.announce(time.Now()))
	d.log.Debug("announced")
}

// publish hands msgs to paho, in order, without waiting.
func (d *conventionDevice) publish(msgs []message) {
	for _, m := range msgs {
		d.link.publish(m.topic, m.qos, m.retain, m.payload)
	}
}
