package motesim

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const (
	// connectTimeout bounds one attempt to reach the broker (TCP and CONNACK).
	connectTimeout = 5 * time.Second
	// writeTimeout bounds handing a packet to paho's writer, and each write.
	// It is also how long a publish that races the loss of the connection
	// can hold the owner: paho then waits for a writer until this timeout.
	// A simulated device's packets are tiny; a second is generous.
	writeTimeout = time.Second
	// keepAlive and pingTimeout notice a broker that vanished without
	// closing the connection.
	keepAlive   = 15 * time.Second
	pingTimeout = 5 * time.Second
	// subscribeTimeout is how long the owner waits for its SUBACK before it
	// announces itself anyway.
	subscribeTimeout = 10 * time.Second
	// publishTimeout is how long a QoS 1 publish may wait for its PUBACK
	// before it is logged as lost.
	publishTimeout = 10 * time.Second
	// maxInflight bounds the QoS 1 publishes a link watches.
	maxInflight = 256
	// commandBuffer is how many commands may wait for the owner's goroutine.
	commandBuffer = 64
	// disconnectQuiesce bounds sending DISCONNECT on an open connection;
	// offlineQuiesce is paho's quiesce when there is no connection (see stop).
	disconnectQuiesce = time.Second
	offlineQuiesce    = 10 * time.Millisecond
	// goodbyeTimeout bounds the wait for a device's goodbye messages to be
	// written before it disconnects.
	goodbyeTimeout = 500 * time.Millisecond
)

// link is the MQTT connection of one simulated mote or device, its owner:
// the paho client, its callbacks, the subscription made after every
// (re)connect and the wait for its SUBACK, the commands that arrive on it,
// the QoS 1 publishes in flight, and the stop. C is a command once parsed.
//
// The fields under "owned by the owner" are touched only by the goroutine
// that runs the owner, which calls every method but paho's callbacks; the
// callbacks reach that goroutine through wake and commands, without
// blocking.
type link[C any] struct {
	cfg      *Config
	log      *slog.Logger
	clientID string
	will     *message // nil: none
	filters  []string // subscribed at QoS 1 after every connect
	// parse turns a message on one of the filters into a command; it runs
	// in paho's callback, so it must not block. An error says why the
	// message is ignored.
	parse func(topic string, payload []byte) (C, error)

	client paho.Client // set by connect
	gate   gate        // lets callbacks run only until the owner stops

	// From the callbacks to the owner.
	conns       atomic.Uint64 // connections made so far; OnConnect counts them
	unreachable atomic.Bool   // a failed attempt was logged at info since the last connect
	wake        chan struct{} // cap 1: OnConnect left a subscription in pending
	commands    chan C        // cap commandBuffer
	mu          sync.Mutex
	pending     subscription // the latest connection's subscription

	// Owned by the owner.
	sub       subscription
	subDone   <-chan struct{}  // sub's SUBACK, while awaited
	subLate   <-chan time.Time // when to stop waiting for it
	announced uint64           // the connection on which the owner announced itself; 0: none
	inflight  []inflight
}

// subscription is the SUBSCRIBE a connection made, by connection number.
type subscription struct {
	tok  paho.Token
	conn uint64
}

// inflight is a QoS 1 publish whose outcome is not known yet.
type inflight struct {
	topic string
	tok   paho.Token
	sent  time.Time
}

// newLink is the link of the client "motesim-"+name; will may be nil.
func newLink[C any](cfg *Config, name string, log *slog.Logger, will *message,
	filters []string, parse func(topic string, payload []byte) (C, error),
) *link[C] {
	return &link[C]{
		cfg:      cfg,
		log:      log,
		clientID: "motesim-" + name,
		will:     will,
		filters:  filters,
		parse:    parse,
		wake:     make(chan struct{}, 1),
		commands: make(chan C, commandBuffer),
	}
}

func (l *link[C]) options() *paho.ClientOptions {
	opts := paho.NewClientOptions().
		AddBroker(l.cfg.Broker).
		SetClientID(l.clientID).
		SetUsername(l.cfg.Username).
		SetPassword(l.cfg.Password).
		SetCleanSession(true).
		SetStore(newCopyingStore()).
		SetOrderMatters(false).
		SetConnectRetry(true).
		SetConnectRetryInterval(l.cfg.MaxReconnectInterval).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(l.cfg.MaxReconnectInterval).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetKeepAlive(keepAlive).
		SetPingTimeout(pingTimeout).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(l.onConnectionLost).
		SetConnectionNotificationHandler(l.onNotification)
	if l.will != nil {
		opts.SetBinaryWill(l.will.topic, l.will.payload, l.will.qos, l.will.retain)
	}
	return opts
}

// connect creates the client and starts reaching the broker, for good: with
// ConnectRetry the token completes only once connected (or when Disconnect
// gives up), so OnConnect is the signal that matters.
func (l *link[C]) connect() {
	l.client = paho.NewClient(l.options())
	l.client.Connect()
}

// await takes the subscription OnConnect left in pending, after a wake-up,
// and starts waiting for its SUBACK (subDone) or for subscribeTimeout
// (subLate); the owner then calls subscribed or late.
func (l *link[C]) await() {
	l.mu.Lock()
	next := l.pending
	l.pending = subscription{}
	l.mu.Unlock()
	if next.tok != nil { // nil: an earlier wake-up took it already
		l.sub = next
		l.subDone, l.subLate = next.tok.Done(), time.After(subscribeTimeout)
	}
}

// subscribed ends the wait for the SUBACK, which arrived, and returns the
// connection the owner may now announce itself on.
func (l *link[C]) subscribed() (conn uint64) {
	l.subDone, l.subLate = nil, nil
	if err := l.sub.tok.Error(); err != nil {
		l.log.Warn("subscribe failed", "err", err)
	} else if st, ok := l.sub.tok.(*paho.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code > 2 {
				l.log.Warn("broker refused subscription: commands will not arrive", "filter", filter, "code", code)
			}
		}
	}
	return l.sub.conn
}

// late ends the wait for the SUBACK, which did not arrive in time, and
// returns the connection the owner announces itself on anyway.
func (l *link[C]) late() (conn uint64) {
	l.subDone, l.subLate = nil, nil
	l.log.Warn("no SUBACK: commands may not arrive", "after", subscribeTimeout)
	return l.sub.conn
}

// announcing reports whether conn is still the open connection; if so, it
// records that the owner announces itself on it, which lets online report
// true. A connection that is gone is not announced: the next one is.
func (l *link[C]) announcing(conn uint64) bool {
	if conn != l.conns.Load() || !l.client.IsConnectionOpen() {
		return false
	}
	l.announced = conn
	return true
}

// online reports whether telemetry may be published now: connected, and the
// owner announced on this connection. paho silently drops QoS 0 messages
// published while it reconnects; not publishing them is the honest
// equivalent.
func (l *link[C]) online() bool {
	return l.announced != 0 && l.announced == l.conns.Load() && l.client.IsConnectionOpen()
}

// publish hands a message to paho without waiting; the outcome of a QoS 1
// publish is checked later by reap.
func (l *link[C]) publish(topic string, qos byte, retain bool, payload []byte) {
	tok := l.client.Publish(topic, qos, retain, payload)
	if qos == 0 {
		return
	}
	if len(l.inflight) == maxInflight {
		l.inflight = l.inflight[1:]
	}
	l.inflight = append(l.inflight, inflight{topic: topic, tok: tok, sent: time.Now()})
}

// reap logs the QoS 1 publishes that failed or were never acknowledged.
func (l *link[C]) reap(now time.Time) {
	keep := l.inflight[:0]
	for _, p := range l.inflight {
		select {
		case <-p.tok.Done():
			if err := p.tok.Error(); err != nil {
				l.log.Warn("publish failed", "topic", p.topic, "err", err)
			}
		default:
			if now.Sub(p.sent) < publishTimeout {
				keep = append(keep, p)
			} else {
				l.log.Warn("publish not acknowledged", "topic", p.topic, "after", publishTimeout)
			}
		}
	}
	clear(l.inflight[len(keep):])
	l.inflight = keep
}

// stop says goodbye, when goodbye is not nil and the owner is connected and
// announced, then disconnects and waits until no callback runs. A clean
// DISCONNECT discards the Will, so the goodbye is what tells the others the
// owner is gone.
//
// paho's Disconnect returns when its work is done or its quiesce has passed,
// whichever comes first. Connected, the work is to send DISCONNECT and stop
// the connection's goroutines: it takes milliseconds, and a second of
// quiesce is only a bound. Not connected, the work is to wait out the pause
// between two attempts and then the whole quiesce (DISCONNECT waits for a
// writer that does not exist): no quiesce is long enough for Disconnect to
// return with that work done, so it is kept short, and paho ends the pause
// in the background, without another attempt and without calling the link.
func (l *link[C]) stop(goodbye func() []message) {
	wasOpen := l.client.IsConnectionOpen()
	quiesce := disconnectQuiesce
	if !wasOpen {
		quiesce = offlineQuiesce
	}
	if wasOpen && goodbye != nil && l.announced == l.conns.Load() {
		l.sayGoodbye(goodbye())
	}
	l.client.Disconnect(uint(quiesce / time.Millisecond))
	l.gate.close()
	if wasOpen {
		l.log.Info("disconnected", "reason", "stopping")
	}
}

// sayGoodbye publishes msgs and waits, at most goodbyeTimeout, until paho
// has written them (QoS 0) or the broker has acknowledged them (QoS 1):
// paho sends DISCONNECT ahead of queued publishes.
func (l *link[C]) sayGoodbye(msgs []message) {
	deadline := time.NewTimer(goodbyeTimeout)
	defer deadline.Stop()
	for _, m := range msgs {
		tok := l.client.Publish(m.topic, m.qos, m.retain, m.payload)
		select {
		case <-tok.Done():
		case <-deadline.C:
			l.log.Warn("goodbye not sent", "topic", m.topic, "after", goodbyeTimeout)
			return
		}
	}
}

// paho's callbacks. Each runs on a goroutine of paho's and must not block.

// onConnect runs after every (re)connect: with a clean session the broker has
// forgotten the subscriptions, so it subscribes again, and hands the SUBACK's
// token to the owner, which announces itself once it completes.
func (l *link[C]) onConnect(c paho.Client) {
	if !l.gate.enter() {
		return
	}
	defer l.gate.leave()
	l.unreachable.Store(false)
	conn := l.conns.Add(1)
	l.log.Info("connected", "broker", l.cfg.Broker, "reconnect", conn > 1)
	filters := make(map[string]byte, len(l.filters))
	for _, f := range l.filters {
		filters[f] = 1
	}
	tok := c.SubscribeMultiple(filters, l.onCommand)
	l.mu.Lock()
	l.pending = subscription{tok: tok, conn: conn}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // the owner has a wake-up pending and will find the latest subscription
	}
}

func (l *link[C]) onConnectionLost(_ paho.Client, err error) {
	if !l.gate.enter() {
		return
	}
	defer l.gate.leave()
	l.log.Info("disconnected", "err", err)
}

// onNotification logs failed connection attempts: the first one after a
// connect (or at start) at info, the following ones at debug.
func (l *link[C]) onNotification(_ paho.Client, n paho.ConnectionNotification) {
	failed, ok := n.(paho.ConnectionNotificationFailed)
	if !ok || !l.gate.enter() {
		return
	}
	defer l.gate.leave()
	level := slog.LevelDebug
	if l.unreachable.CompareAndSwap(false, true) {
		level = slog.LevelInfo
	}
	l.log.Log(context.Background(), level, "connect failed, retrying",
		"broker", l.cfg.Broker, "err", failed.Reason, "max_interval", l.cfg.MaxReconnectInterval)
}

// onCommand parses a message on one of the filters and hands the command to
// the owner, or drops it when commandBuffer commands are already waiting.
func (l *link[C]) onCommand(_ paho.Client, msg paho.Message) {
	if !l.gate.enter() {
		return
	}
	defer l.gate.leave()
	c, err := l.parse(msg.Topic(), msg.Payload())
	if err != nil {
		l.log.Debug("command ignored", "topic", msg.Topic(), "err", err)
		return
	}
	select {
	case l.commands <- c:
	default:
		l.log.Warn("command dropped: too many waiting", "topic", msg.Topic(), "waiting", commandBuffer)
	}
}

// gate lets paho's callbacks in until the owner stops, and lets the owner
// wait for those already in, so none runs (or logs) after Run has returned.
type gate struct {
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

// enter reports whether a callback may run; if so it must call leave.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running.Add(1)
	return true
}

func (g *gate) leave() { g.running.Done() }

// close turns new callbacks away and waits for the running ones.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.running.Wait()
}
