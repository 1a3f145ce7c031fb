package motesim

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// goodbyeTimeout bounds the wait for a device's goodbye messages to be
// written before it disconnects.
const goodbyeTimeout = 500 * time.Millisecond

// conventionDevice runs a convention over MQTT, as a mote runs: the fields
// under "owned by run" are touched only by the goroutine running
// [conventionDevice.run]; paho's callbacks reach it through wake and
// commands, without blocking.
type conventionDevice struct {
	cfg  *Config
	conv convention
	log  *slog.Logger

	client paho.Client // set by run before it connects
	gate   gate        // lets callbacks run only until the device stops

	// From the callbacks to run.
	conns       atomic.Uint64 // connections made so far; OnConnect counts them
	unreachable atomic.Bool   // a failed attempt was logged at info since the last connect
	wake        chan struct{} // cap 1: OnConnect left a subscription in pending
	commands    chan delivery // cap commandBuffer
	mu          sync.Mutex
	pending     subscription // the latest connection's subscription

	// Owned by run.
	announced uint64 // the connection on which the device announced itself; 0: none
	inflight  []inflight
}

// delivery is a message that arrived on one of the device's subscriptions.
type delivery struct {
	topic   string
	payload []byte
}

func newConventionDevice(cfg *Config, conv convention, log *slog.Logger) *conventionDevice {
	return &conventionDevice{
		cfg:      cfg,
		conv:     conv,
		log:      log.With("device", conv.name()),
		wake:     make(chan struct{}, 1),
		commands: make(chan delivery, commandBuffer),
	}
}

func (d *conventionDevice) options() *paho.ClientOptions {
	opts := paho.NewClientOptions().
		AddBroker(d.cfg.Broker).
		SetClientID("motesim-" + d.conv.name()).
		SetUsername(d.cfg.Username).
		SetPassword(d.cfg.Password).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetConnectRetry(true).
		SetConnectRetryInterval(d.cfg.MaxReconnectInterval).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(d.cfg.MaxReconnectInterval).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetKeepAlive(keepAlive).
		SetPingTimeout(pingTimeout).
		SetOnConnectHandler(d.onConnect).
		SetConnectionLostHandler(d.onConnectionLost).
		SetConnectionNotificationHandler(d.onNotification)
	if w, ok := d.conv.will(); ok {
		opts.SetBinaryWill(w.topic, w.payload, w.qos, w.retain)
	}
	return opts
}

// run is the device's life: it connects, then announces itself after each
// connect, reports and obeys until ctx ends, then says goodbye, disconnects
// and waits for its callbacks to return.
func (d *conventionDevice) run(ctx context.Context) {
	d.client = paho.NewClient(d.options())
	d.client.Connect() // see mote.run: OnConnect is the signal that matters
	defer d.stop()

	report := time.NewTicker(d.cfg.ReportInterval)
	defer report.Stop()

	var (
		sub     subscription
		subDone <-chan struct{}  // sub's SUBACK, while awaited
		subLate <-chan time.Time // when to stop waiting for it
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			d.mu.Lock()
			next := d.pending
			d.pending = subscription{}
			d.mu.Unlock()
			if next.tok != nil { // nil: an earlier wake-up took it already
				sub = next
				subDone, subLate = sub.tok.Done(), time.After(subscribeTimeout)
			}
		case <-subDone:
			subDone, subLate = nil, nil
			if err := sub.tok.Error(); err != nil {
				d.log.Warn("subscribe failed", "err", err)
			}
			d.announce(sub.conn)
		case <-subLate:
			subDone, subLate = nil, nil
			d.log.Warn("no SUBACK: commands may not arrive", "after", subscribeTimeout)
			d.announce(sub.conn)
		case c := <-d.commands:
			answer, err := d.conv.obey(c.topic, c.payload)
			if err != nil {
				d.log.Debug("command ignored", "topic", c.topic, "err", err)
				break
			}
			d.log.Debug("command", "topic", c.topic)
			d.publish(answer)
		case now := <-report.C:
			if d.online() {
				d.publish(d.conv.report(now))
			}
			d.reap(now)
		}
	}
}

// announce publishes what the device says after connecting, once per
// connection, and lets telemetry flow on that connection.
func (d *conventionDevice) announce(conn uint64) {
	if conn != d.conns.Load() || !d.client.IsConnectionOpen() {
		return // that connection is gone; the next one announces itself
	}
	d.announced = conn
	d.publish(d.conv.announce(time.Now()))
	d.log.Debug("announced")
}

// online reports whether telemetry may be published now (see mote.online).
func (d *conventionDevice) online() bool {
	return d.announced != 0 && d.announced == d.conns.Load() && d.client.IsConnectionOpen()
}

// publish hands messages to paho without waiting; the outcome of QoS 1
// publishes is checked later by reap.
func (d *conventionDevice) publish(msgs []message) {
	for _, m := range msgs {
		tok := d.client.Publish(m.topic, m.qos, m.retain, m.payload)
		if m.qos == 0 {
			continue
		}
		if len(d.inflight) == maxInflight {
			d.inflight = d.inflight[1:]
		}
		d.inflight = append(d.inflight, inflight{topic: m.topic, tok: tok, sent: time.Now()})
	}
}

// reap logs the QoS 1 publishes that failed or were never acknowledged.
func (d *conventionDevice) reap(now time.Time) {
	keep := d.inflight[:0]
	for _, p := range d.inflight {
		select {
		case <-p.tok.Done():
			if err := p.tok.Error(); err != nil {
				d.log.Warn("publish failed", "topic", p.topic, "err", err)
			}
		default:
			if now.Sub(p.sent) < publishTimeout {
				keep = append(keep, p)
			} else {
				d.log.Warn("publish not acknowledged", "topic", p.topic, "after", publishTimeout)
			}
		}
	}
	clear(d.inflight[len(keep):])
	d.inflight = keep
}

// stop says goodbye when the device is connected and announced, then
// disconnects and waits until no callback runs (see mote.stop for the
// quiesce). A clean DISCONNECT discards the Will, so the goodbye is what
// tells the others the device is gone.
func (d *conventionDevice) stop() {
	wasOpen := d.client.IsConnectionOpen()
	quiesce := disconnectQuiesce
	if !wasOpen {
		quiesce = offlineQuiesce
	}
	if wasOpen && d.announced == d.conns.Load() {
		d.sayGoodbye()
	}
	d.client.Disconnect(uint(quiesce / time.Millisecond))
	d.gate.close()
	if wasOpen {
		d.log.Info("disconnected", "reason", "stopping")
	}
}

// sayGoodbye publishes the goodbye and waits, at most goodbyeTimeout, until
// paho has written it (QoS 0) or the broker has acknowledged it (QoS 1):
// paho sends DISCONNECT ahead of queued publishes.
func (d *conventionDevice) sayGoodbye() {
	deadline := time.NewTimer(goodbyeTimeout)
	defer deadline.Stop()
	for _, m := range d.conv.goodbye() {
		tok := d.client.Publish(m.topic, m.qos, m.retain, m.payload)
		select {
		case <-tok.Done():
		case <-deadline.C:
			d.log.Warn("goodbye not sent", "topic", m.topic, "after", goodbyeTimeout)
			return
		}
	}
}

// paho's callbacks. Each runs on a goroutine of paho's and must not block.

// onConnect runs after every (re)connect: with a clean session the broker has
// forgotten the subscriptions, so it subscribes again, and hands the SUBACK's
// token to run, which announces the device once it completes.
func (d *conventionDevice) onConnect(c paho.Client) {
	if !d.gate.enter() {
		return
	}
	defer d.gate.leave()
	d.unreachable.Store(false)
	conn := d.conns.Add(1)
	d.log.Info("connected", "broker", d.cfg.Broker, "reconnect", conn > 1)
	filters := make(map[string]byte)
	for _, f := range d.conv.subscriptions() {
		filters[f] = 1
	}
	tok := c.SubscribeMultiple(filters, d.onCommand)
	d.mu.Lock()
	d.pending = subscription{tok: tok, conn: conn}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default: // run has a wake-up pending and will find the latest subscription
	}
}

func (d *conventionDevice) onConnectionLost(_ paho.Client, err error) {
	if !d.gate.enter() {
		return
	}
	defer d.gate.leave()
	d.log.Info("disconnected", "err", err)
}

// onNotification logs failed connection attempts as mote.onNotification does.
func (d *conventionDevice) onNotification(_ paho.Client, n paho.ConnectionNotification) {
	failed, ok := n.(paho.ConnectionNotificationFailed)
	if !ok || !d.gate.enter() {
		return
	}
	defer d.gate.leave()
	level := slog.LevelDebug
	if d.unreachable.CompareAndSwap(false, true) {
		level = slog.LevelInfo
	}
	d.log.Log(context.Background(), level, "connect failed, retrying",
		"broker", d.cfg.Broker, "err", failed.Reason, "max_interval", d.cfg.MaxReconnectInterval)
}

func (d *conventionDevice) onCommand(_ paho.Client, msg paho.Message) {
	if !d.gate.enter() {
		return
	}
	defer d.gate.leave()
	select {
	case d.commands <- delivery{topic: msg.Topic(), payload: msg.Payload()}:
	default:
		d.log.Warn("command dropped: too many waiting", "topic", msg.Topic(), "waiting", commandBuffer)
	}
}
