package motesim

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
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
	// can hold the mote: paho then waits for a writer until this timeout.
	// A mote's packets are tiny; a second is generous.
	writeTimeout = time.Second
	// keepAlive and pingTimeout notice a broker that vanished without
	// closing the connection.
	keepAlive   = 15 * time.Second
	pingTimeout = 5 * time.Second
	// subscribeTimeout is how long a mote waits for its SUBACK before it
	// announces itself anyway.
	subscribeTimeout = 10 * time.Second
	// publishTimeout is how long a QoS 1 publish may wait for its PUBACK
	// before the mote logs it as lost.
	publishTimeout = 10 * time.Second
	// maxInflight bounds the QoS 1 publishes a mote watches.
	maxInflight = 256
	// commandBuffer is how many commands may wait for the mote's goroutine.
	commandBuffer = 64
	// disconnectQuiesce bounds sending DISCONNECT on an open connection;
	// offlineQuiesce is paho's quiesce when there is no connection (see stop).
	disconnectQuiesce = time.Second
	offlineQuiesce    = 10 * time.Millisecond
)

// mote is one simulated device. The fields under "owned by run" are touched
// only by the goroutine running [mote.run]; paho's callbacks reach it through
// wake and commands, without blocking.
type mote struct {
	cfg  *Config
	name string
	root string // Prefix/name: every topic of the mote is below it
	log  *slog.Logger

	client paho.Client // set by run before it connects
	gate   gate        // lets callbacks run only until the mote stops

	// From the callbacks to run.
	conns       atomic.Uint64 // connections made so far; OnConnect counts them
	unreachable atomic.Bool   // a failed attempt was logged at info since the last connect
	wake        chan struct{} // cap 1: OnConnect left a subscription in pending
	commands    chan command
	mu          sync.Mutex
	pending     subscription // the latest connection's subscription

	// Owned by run.
	start     time.Time
	asnOffset int64
	thermo    *thermometer
	pirRand   *rand.Rand
	pirCount  int64
	relays    map[string]bool
	led       bool
	boots     int
	announced uint64 // the connection on which boot was published; 0: none
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

func newMote(cfg *Config, n int, log *slog.Logger) *mote {
	name := "mote-" + strconv.Itoa(n)
	relays := make(map[string]bool, len(relayIDs))
	for _, id := range relayIDs {
		relays[id] = false
	}
	return &mote{
		cfg:       cfg,
		name:      name,
		root:      cfg.Prefix + "/" + name,
		log:       log.With("mote", name),
		wake:      make(chan struct{}, 1),
		commands:  make(chan command, commandBuffer),
		asnOffset: asnOffset(cfg.Seed, n),
		thermo:    newThermometer(cfg.Seed, n),
		pirRand:   newRand(cfg.Seed, n, streamPIR),
		relays:    relays,
	}
}

func (m *mote) options() *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(m.cfg.Broker).
		SetClientID("motesim-" + m.name).
		SetUsername(m.cfg.Username).
		SetPassword(m.cfg.Password).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetConnectRetry(true).
		SetConnectRetryInterval(m.cfg.MaxReconnectInterval).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(m.cfg.MaxReconnectInterval).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetKeepAlive(keepAlive).
		SetPingTimeout(pingTimeout).
		SetOnConnectHandler(m.onConnect).
		SetConnectionLostHandler(m.onConnectionLost).
		SetConnectionNotificationHandler(m.onNotification)
}

// run is the mote's life: it connects, then publishes and obeys until ctx
// ends, then disconnects and waits for its callbacks to return.
func (m *mote) run(ctx context.Context) {
	m.start = time.Now()
	m.client = paho.NewClient(m.options())
	// With ConnectRetry the token completes only once connected (or when
	// Disconnect gives up): OnConnect is the signal that matters.
	m.client.Connect()
	defer m.stop()

	asnTick := time.NewTicker(m.cfg.ASNInterval)
	defer asnTick.Stop()
	tempTick := time.NewTicker(m.cfg.TemperatureInterval)
	defer tempTick.Stop()
	pirTimer := time.NewTimer(pirDelay(m.pirRand, m.cfg.PIRInterval))
	defer pirTimer.Stop()

	var (
		sub     subscription
		subDone <-chan struct{}  // sub's SUBACK, while awaited
		subLate <-chan time.Time // when to stop waiting for it
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
			m.mu.Lock()
			next := m.pending
			m.pending = subscription{}
			m.mu.Unlock()
			if next.tok != nil { // nil: an earlier wake-up took it already
				sub = next
				subDone, subLate = sub.tok.Done(), time.After(subscribeTimeout)
			}
		case <-subDone:
			subDone, subLate = nil, nil
			m.subscribed(sub)
		case <-subLate:
			subDone, subLate = nil, nil
			m.log.Warn("no SUBACK: commands may not arrive", "after", subscribeTimeout)
			m.announce(sub.conn)
		case c := <-m.commands:
			m.obey(c)
		case now := <-asnTick.C:
			if m.online() {
				m.publish(topicASN, 0, false, intPayload(asnAt(m.asnOffset, time.Since(m.start))))
			}
			m.reap(now)
		case <-tempTick.C:
			m.thermo.next()
			if m.online() {
				m.publish(topicTemperature, 0, true, temperaturePayload(m.thermo.now))
			}
		case <-pirTimer.C:
			m.pirCount++
			if m.online() {
				m.publish(topicPIR, 0, true, intPayload(m.pirCount))
			}
			pirTimer.Reset(pirDelay(m.pirRand, m.cfg.PIRInterval))
		}
	}
}

// stop disconnects and waits until no callback runs.
//
// paho's Disconnect returns when its work is done or its quiesce has passed,
// whichever comes first. Connected, the work is to send DISCONNECT and stop
// the connection's goroutines: it takes milliseconds, and a second of
// quiesce is only a bound. Not connected, the work is to wait out the pause
// between two attempts and then the whole quiesce (DISCONNECT waits for a
// writer that does not exist): no quiesce is long enough for Disconnect to
// return with that work done, so it is kept short, and paho ends the pause
// in the background, without another attempt and without calling the mote.
func (m *mote) stop() {
	wasOpen := m.client.IsConnectionOpen()
	quiesce := disconnectQuiesce
	if !wasOpen {
		quiesce = offlineQuiesce
	}
	m.client.Disconnect(uint(quiesce / time.Millisecond))
	m.gate.close()
	if wasOpen {
		m.log.Info("disconnected", "reason", "stopping")
	}
}

// subscribed ends the wait for sub's SUBACK.
func (m *mote) subscribed(sub subscription) {
	if err := sub.tok.Error(); err != nil {
		m.log.Warn("subscribe failed", "err", err)
	} else if st, ok := sub.tok.(*paho.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code > 2 {
				m.log.Warn("broker refused subscription: commands will not arrive", "filter", filter, "code", code)
			}
		}
	}
	m.announce(sub.conn)
}

// announce publishes boot and every retained state, once per connection,
// and lets telemetry flow on that connection.
func (m *mote) announce(conn uint64) {
	if conn != m.conns.Load() || !m.client.IsConnectionOpen() {
		return // that connection is gone; the next one announces itself
	}
	m.announced = conn
	m.publish(topicBoot, 1, false, bootPayload(m.boots > 0))
	m.boots++
	m.log.Debug("booted", "boots", m.boots)
	m.publish(topicASN, 0, false, intPayload(asnAt(m.asnOffset, time.Since(m.start))))
	for _, id := range relayIDs {
		m.publish(topicRelay+id, 1, true, relayPayload(m.relays[id]))
	}
	m.publish(topicLED, 1, true, ledPayload(m.led))
	m.publish(topicTemperature, 0, true, temperaturePayload(m.thermo.now))
	m.publish(topicPIR, 0, true, intPayload(m.pirCount))
}

// online reports whether telemetry may be published now: connected, and boot
// published on this connection. paho silently drops QoS 0 messages published
// while it reconnects; not publishing them is the honest equivalent.
func (m *mote) online() bool {
	return m.announced != 0 && m.announced == m.conns.Load() && m.client.IsConnectionOpen()
}

// obey applies c and echoes the state, changed or not: the echo confirms it.
func (m *mote) obey(c command) {
	if c.relay == "" {
		m.led = c.state
		m.log.Debug("command", "led", c.state)
		m.publish(topicLED, 1, true, ledPayload(m.led))
		return
	}
	m.relays[c.relay] = c.state
	m.log.Debug("command", "relay", c.relay, "state", c.state)
	m.publish(topicRelay+c.relay, 1, true, relayPayload(c.state))
}

// publish hands a message to paho without waiting; the outcome of a QoS 1
// publish is checked later by reap.
func (m *mote) publish(rel string, qos byte, retain bool, payload []byte) {
	topic := m.root + "/" + rel
	tok := m.client.Publish(topic, qos, retain, payload)
	if qos == 0 {
		return
	}
	if len(m.inflight) == maxInflight {
		m.inflight = m.inflight[1:]
	}
	m.inflight = append(m.inflight, inflight{topic: topic, tok: tok, sent: time.Now()})
}

// reap logs the QoS 1 publishes that failed or were never acknowledged.
func (m *mote) reap(now time.Time) {
	keep := m.inflight[:0]
	for _, p := range m.inflight {
		select {
		case <-p.tok.Done():
			if err := p.tok.Error(); err != nil {
				m.log.Warn("publish failed", "topic", p.topic, "err", err)
			}
		default:
			if now.Sub(p.sent) < publishTimeout {
				keep = append(keep, p)
			} else {
				m.log.Warn("publish not acknowledged", "topic", p.topic, "after", publishTimeout)
			}
		}
	}
	clear(m.inflight[len(keep):])
	m.inflight = keep
}

// paho's callbacks. Each runs on a goroutine of paho's and must not block.

// onConnect runs after every (re)connect: with a clean session the broker has
// forgotten the mote's subscriptions, so it subscribes again, and hands the
// SUBACK's token to run, which announces the mote once it completes.
func (m *mote) onConnect(c paho.Client) {
	if !m.gate.enter() {
		return
	}
	defer m.gate.leave()
	m.unreachable.Store(false)
	conn := m.conns.Add(1)
	m.log.Info("connected", "broker", m.cfg.Broker, "reconnect", conn > 1)
	tok := c.SubscribeMultiple(map[string]byte{
		m.root + "/" + filterRelaySet: 1,
		m.root + "/" + topicLEDSet:    1,
	}, m.onCommand)
	m.mu.Lock()
	m.pending = subscription{tok: tok, conn: conn}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default: // run has a wake-up pending and will find the latest subscription
	}
}

func (m *mote) onConnectionLost(_ paho.Client, err error) {
	if !m.gate.enter() {
		return
	}
	defer m.gate.leave()
	m.log.Info("disconnected", "err", err)
}

// onNotification logs failed connection attempts: the first one after a
// connect (or at start) at info, the following ones at debug.
func (m *mote) onNotification(_ paho.Client, n paho.ConnectionNotification) {
	failed, ok := n.(paho.ConnectionNotificationFailed)
	if !ok || !m.gate.enter() {
		return
	}
	defer m.gate.leave()
	level := slog.LevelDebug
	if m.unreachable.CompareAndSwap(false, true) {
		level = slog.LevelInfo
	}
	m.log.Log(context.Background(), level, "connect failed, retrying",
		"broker", m.cfg.Broker, "err", failed.Reason, "max_interval", m.cfg.MaxReconnectInterval)
}

func (m *mote) onCommand(_ paho.Client, msg paho.Message) {
	if !m.gate.enter() {
		return
	}
	defer m.gate.leave()
	c, err := parseCommand(m.root, msg.Topic(), msg.Payload())
	if err != nil {
		m.log.Debug("command ignored", "topic", msg.Topic(), "err", err)
		return
	}
	select {
	case m.commands <- c:
	default:
		m.log.Warn("command dropped: too many waiting", "topic", msg.Topic(), "waiting", commandBuffer)
	}
}

// gate lets paho's callbacks in until the mote stops, and lets the mote wait
// for those already in, so none runs (or logs) after Run has returned.
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
