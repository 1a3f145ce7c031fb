package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/defaults"
	"github.com/motehub/motehub/internal/refusals"
	"github.com/motehub/motehub/topics"
)

// Config tunes the embedded broker. The zero value of each field means its
// documented default.
type Config struct {
	// Addr is the TCP address MQTT clients connect to, e.g. "127.0.0.1:1883";
	// port 0 picks a free port (see [Embedded.Addr]). Default "": no TCP
	// listener, the broker only serves the hub.
	Addr string
	// MaxPacketSize bounds an MQTT packet in bytes; larger ones end the
	// client's connection. Default 1 MiB.
	MaxPacketSize uint32
	// MaxPendingWrites bounds the messages queued for one MQTT client;
	// messages past it are dropped for that client. The queue takes memory
	// only while it holds messages (an idle client has none, and no writer
	// goroutine). Default 512.
	MaxPendingWrites int32
	// ReadBufferSize is the buffer each MQTT client's packets are read
	// through, in bytes: held for as long as the client is connected, so
	// sized for devices, whose packets are small (a larger packet is read
	// past the buffer, straight into its own). Default 512.
	ReadBufferSize int
	// SysInterval is how often the $SYS topics are refreshed. Default 10 s.
	SysInterval time.Duration
	// WriteTimeout bounds every write to an MQTT client. Default 10 s.
	WriteTimeout time.Duration
	// CloseTimeout bounds [Embedded.Close]. Default 5 s.
	CloseTimeout time.Duration

	// TLSAddr is the TCP address for MQTT over TLS, with TLS as its
	// configuration. Default "": none.
	TLSAddr string
	TLS     *tls.Config

	// Authorizer decides who may connect, publish and subscribe: the same
	// one the HTTP side asks. Default: auth.Open(), everyone may do everything.
	Authorizer *auth.Authorizer
	// Throttle slows password guessing per user name and address; shared
	// with the HTTP side. Default: auth.NewThrottle's defaults.
	Throttle *auth.Throttle
	// MaxConnections bounds the MQTT connections in total. Default 10000.
	MaxConnections int
	// MaxConnectionsPerAddress bounds the MQTT connections from one IP
	// address. Default 256.
	MaxConnectionsPerAddress int
	// MessageRate bounds the messages per second one client may publish;
	// bursts of twice as many pass. A client past it is disconnected with
	// reason "message rate too high". Default 1000; negative: no limit.
	MessageRate float64
	// ConnectTimeout is how long a new connection has to send its CONNECT;
	// one that has not is closed (and counted). Default 10 s.
	ConnectTimeout time.Duration

	// MaxSessions bounds the sessions the broker keeps, connected or not. A
	// client with a new client id at the cap ends the session that has been
	// disconnected longest (counted and logged), or, when every session is
	// connected, is refused with "quota exceeded" ("server unavailable" in
	// MQTT 3.1.1). Default 10000.
	MaxSessions int
	// SessionExpiry is how long the broker keeps the session of a client
	// that went away (its subscriptions and queued messages): for MQTT 3.1.1
	// clients with clean session off, and the longest an MQTT 5 client may
	// ask for (its CONNACK says when it asked more). Default 24 h.
	SessionExpiry time.Duration
	// MaxSubscriptions bounds the subscriptions of one client; filters past
	// it are refused with "quota exceeded" (0x97; 0x80 in MQTT 3.1.1).
	// Default 10000.
	MaxSubscriptions int
	// MaxQueued bounds the QoS 1 and 2 messages in flight to, or queued for,
	// one session; past it, messages for that session are dropped (counted in
	// Stats.MessagesDropped). At most 65535. Default 1000.
	MaxQueued int
	// TopicAliases is how many topic aliases an MQTT 5 client may use
	// towards the broker (its CONNACK says so). Default 32.
	TopicAliases int

	// Refusals receives the refused CONNECTs and WebSocket handshakes, and
	// the clients cut off for publishing too fast: one WARN line each,
	// summarised per address (package refusals); the hub shares one among
	// its doors. Default: a Log of the broker's own on Logger, closed by
	// Close.
	Refusals *refusals.Log

	// Store keeps persistent sessions, their queued messages and the
	// retained messages across restarts. Default: none, all in memory.
	Store *Store
	// Logger receives the broker's logs; mochi's routine messages are kept to
	// warnings unless it is enabled for debug. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	defaults.Set(&c.MaxPacketSize, 1<<20)
	defaults.Set(&c.MaxPendingWrites, 512)
	defaults.Set(&c.ReadBufferSize, 512)
	if c.SysInterval < time.Second {
		c.SysInterval = 10 * time.Second
	}
	defaults.Set(&c.WriteTimeout, 10*time.Second)
	defaults.Set(&c.CloseTimeout, 5*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Authorizer == nil {
		c.Authorizer = auth.Open()
	}
	if c.Refusals == nil {
		c.Refusals = refusals.New(refusals.Config{Logger: c.Logger})
	}
	if c.Throttle == nil {
		c.Throttle = auth.NewThrottle(auth.ThrottleConfig{})
	}
	defaults.Set(&c.MaxConnections, 10000)
	defaults.Set(&c.MaxConnectionsPerAddress, 256)
	defaults.Set(&c.MessageRate, 1000)
	defaults.Set(&c.ConnectTimeout, 10*time.Second)
	defaults.Set(&c.MaxSessions, 10000)
	defaults.Set(&c.SessionExpiry, 24*time.Hour)
	defaults.Set(&c.MaxSubscriptions, 10000)
	defaults.Set(&c.MaxQueued, 1000)
	c.MaxQueued = min(c.MaxQueued, math.MaxUint16)
	defaults.Set(&c.TopicAliases, 32)
	c.TopicAliases = min(c.TopicAliases, math.MaxUint16)
}

// ErrClosed is returned by the methods of a closed broker.
var ErrClosed = errors.New("the broker is closed")

// Embedded is the mochi-mqtt broker running inside the hub. It implements
// bridge.Bus.
type Embedded struct {
	cfg    Config
	server *mqtt.Server
	self   *mqtt.Client // the hub's own client, for what the hub publishes
	tcp    *tcpListener // nil without Config.Addr
	tls    *tcpListener // nil without Config.TLSAddr
	ws     *wsListener  // MQTT over WebSocket, see WebSocketHandler
	hook   *hook
	subID  atomic.Int64
	closed atomic.Bool

	ownRefusals bool // cfg.Refusals is the broker's own: Close closes it

	closeOnce sync.Once
	closeErr  error
}

var _ bridge.Bus = (*Embedded)(nil)

// Start binds the listeners and starts the broker. Connections wait in the
// listeners' backlog until [Embedded.Open]: the hub subscribes first, so that
// it misses no device's message (and mochi's retained-message scan for the
// hub's subscription does not race with devices' retained publishes).
func Start(cfg Config) (*Embedded, error) {
	ownRefusals := cfg.Refusals == nil
	cfg.setDefaults()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	caps.MaximumClientWritesPending = cfg.MaxPendingWrites
	caps.MaximumMessageExpiryInterval = 0 // retained messages live until replaced; an expiry is the publisher's to set
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.MaximumSessionExpiryInterval = uint32(min(cfg.SessionExpiry/time.Second, math.MaxUint32))
	caps.MaximumClientSubscriptions = uint32(cfg.MaxSubscriptions)
	caps.MaximumInflight = uint16(cfg.MaxQueued)
	caps.TopicAliasMaximum = uint16(cfg.TopicAliases)
	server := mqtt.New(&mqtt.Options{
		Capabilities:            caps,
		ClientNetReadBufferSize: cfg.ReadBufferSize,
		InlineClient:            true,
		SysTopicResendInterval:  int64(cfg.SysInterval / time.Second),
		Logger:                  mochiLogger(cfg.Logger),
	})
	self := server.NewClient(nil, mqtt.LocalListener, "motehub", true)
	self.Properties.ProtocolVersion = 5 // so that v5 properties (request/response) are kept
	e := &Embedded{cfg: cfg, server: server, self: self, ownRefusals: ownRefusals}
	var store *storeHook
	if cfg.Store != nil {
		store = newStoreHook(cfg.Store)
	}
	e.hook = newHook(server, &cfg, e.connections, store)
	if err := server.AddHook(e.hook, nil); err != nil {
		return nil, fmt.Errorf("add the broker's hook: %w", err)
	}
	if store != nil {
		if err := server.AddHook(store, nil); err != nil {
			return nil, fmt.Errorf("add the store's hook: %w", err)
		}
	}
	var err error
	if e.tcp, err = e.listen("mqtt", cfg.Addr, nil); err != nil {
		return nil, err
	}
	if cfg.TLSAddr != "" && cfg.TLS == nil {
		return nil, errors.New("MQTT over TLS needs a TLS configuration")
	}
	if e.tls, err = e.listen("mqtts", cfg.TLSAddr, cfg.TLS); err != nil {
		e.closeListeners()
		return nil, err
	}
	e.ws = &wsListener{conns: newConns(e.connLimits()), disconnect: e.disconnectListener}
	if err := server.AddListener(e.ws); err != nil {
		e.closeListeners()
		return nil, fmt.Errorf("add a listener to the broker: %w", err)
	}
	if err := server.Serve(); err != nil {
		_ = e.Close(context.Background())
		return nil, fmt.Errorf("start the broker: %w", err)
	}
	return e, nil
}

// listen binds a listener on addr (none when addr is ""), with TLS when
// tlsCfg is set, and adds it to the broker.
func (e *Embedded) listen(id, addr string, tlsCfg *tls.Config) (*tcpListener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for %s on %s: %w", strings.ToUpper(id), addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	l := newTCPListener(id, ln, e.connLimits(), e.cfg.Refusals, e.disconnectListener)
	if err := e.server.AddListener(l); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("add a listener to the broker: %w", err)
	}
	return l, nil
}

// connLimits are the time limits of every listener's connections.
func (e *Embedded) connLimits() connLimits {
	return connLimits{
		writeTimeout:     e.cfg.WriteTimeout,
		connectTimeout:   e.cfg.ConnectTimeout,
		onConnectTimeout: func() { e.hook.connectTimeouts.Add(1) },
	}
}

func (e *Embedded) listeners() []*tcpListener {
	var ls []*tcpListener
	for _, l := range []*tcpListener{e.tcp, e.tls} {
		if l != nil {
			ls = append(ls, l)
		}
	}
	return ls
}

func (e *Embedded) closeListeners() {
	for _, l := range e.listeners() {
		_ = l.ln.Close()
	}
}

// connections counts the open MQTT connections, in total and from ip.
func (e *Embedded) connections(ip string) (total, fromIP int) {
	for _, s := range e.connSets() {
		t, f := s.count(ip)
		total, fromIP = total+t, fromIP+f
	}
	return total, fromIP
}

// connSets are the connections of every listener, MQTT over WebSocket included.
func (e *Embedded) connSets() []*conns {
	var sets []*conns
	for _, l := range e.listeners() {
		sets = append(sets, &l.conns)
	}
	if e.ws != nil {
		sets = append(sets, &e.ws.conns)
	}
	return sets
}

// disconnectListener tells the clients of one listener that the server is
// shutting down. It stands in for mochi's closeListenerClients, whose
// Clients.GetByListener takes the clients' read lock twice and deadlocks
// with a client leaving at that moment (mochi-mqtt/server#488): GetAll
// takes it once.
func (e *Embedded) disconnectListener(id string) {
	for _, cl := range e.server.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = e.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Open lets MQTT clients in. Calling it more than once is harmless.
func (e *Embedded) Open() {
	for _, l := range e.listeners() {
		l.admit()
	}
}

// Addr is the address MQTT clients connect to, or nil without a TCP listener.
func (e *Embedded) Addr() net.Addr {
	if e.tcp == nil {
		return nil
	}
	return e.tcp.ln.Addr()
}

// TLSAddr is the address of MQTT over TLS, or nil without it.
func (e *Embedded) TLSAddr() net.Addr {
	if e.tls == nil {
		return nil
	}
	return e.tls.ln.Addr()
}

// Recheck disconnects the MQTT clients whose user no longer exists (after
// the Authorizer's users were replaced) and ends the sessions such users
// left; the others keep their connection and get their new rights at their
// next publish or delivery, or, for a session resumed later, at CONNECT.
func (e *Embedded) Recheck() {
	authz := e.cfg.Authorizer
	for _, cl := range e.server.Clients.GetAll() {
		if cl.Net.Inline || authz.Known(identityOf(cl)) {
			continue
		}
		if cl.Closed() {
			e.hook.endSession(cl)
		} else {
			_ = e.server.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	}
}

// Stats is a snapshot of the broker's counters.
type Stats struct {
	// Refusals: wrong credentials, connections past a limit, clients
	// disconnected for their message rate, connections closed for sending no
	// CONNECT in time.
	AuthFailures, ConnectionsRefused, RateLimited, ConnectTimeouts uint64
	// Refusals at CONNECT: a Will the user may not publish, a client id that
	// is reserved or names another user's session, a new session when every
	// session is connected (MaxSessions).
	WillsRefused, ClientIDsRefused, SessionsRefused uint64
	// Sessions ended before their expiry (for a new one, past MaxSessions,
	// or because their user was removed); subscriptions refused past
	// MaxSubscriptions; subscriptions and queued messages dropped from a
	// resumed session because its user may no longer read them.
	SessionsEnded, SubscriptionsRefused, SubscriptionsDropped, QueuedDropped uint64
	// Connections open now by listener: "mqtt", "mqtts", "mqtt-ws".
	Connections map[string]int
	// Sessions the broker keeps now, connected or not.
	Sessions int
	// The broker's own counts (mochi's $SYS values). Dropped: messages for a
	// client whose queue was full (MaxPendingWrites), or whose session was
	// (MaxQueued).
	MessagesReceived, MessagesSent, MessagesDropped uint64
	BytesReceived, BytesSent                        uint64
	Retained, Subscriptions, Inflight               int64
}

// Stats returns the broker's counters.
func (e *Embedded) Stats() Stats {
	s := e.hook.stats()
	s.Connections = map[string]int{}
	for _, l := range e.listeners() {
		s.Connections[l.id], _ = l.count("")
	}
	if e.ws != nil {
		s.Connections[wsListenerID], _ = e.ws.count("")
	}
	s.Sessions = sessions(e.server)
	info := e.server.Info.Clone()
	s.MessagesReceived, s.MessagesSent = uint64(info.MessagesReceived), uint64(info.MessagesSent)
	s.MessagesDropped = uint64(info.MessagesDropped + info.InflightDropped)
	s.BytesReceived, s.BytesSent = uint64(info.BytesReceived), uint64(info.BytesSent)
	s.Retained, s.Subscriptions, s.Inflight = info.Retained, info.Subscriptions, info.Inflight
	return s
}

// Publish injects m into the broker as the hub's own client: every matching
// subscriber, MQTT or inline, gets it before Publish returns. The broker's
// ACL is not consulted; the hub checks its clients before it publishes.
func (e *Embedded) Publish(ctx context.Context, m bridge.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.closed.Load() {
		return ErrClosed
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		PacketID:    uint16(m.QoS), // the hub's client needs no acknowledgement, but a QoS > 0 packet needs an id
		Properties: packets.Properties{
			ResponseTopic:   m.ResponseTopic,
			CorrelationData: m.CorrelationData,
		},
	}
	if err := e.server.InjectPacket(e.self, pk); err != nil {
		return fmt.Errorf("publish to %q: %w", m.Topic, err)
	}
	return nil
}

// Subscribe calls fn for every message whose topic matches filter, starting
// with the retained ones, until cancel is called.
func (e *Embedded) Subscribe(filter string, fn func(bridge.Message)) (cancel func(), err error) {
	if err := topics.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", filter, err)
	}
	if e.closed.Load() {
		return nil, ErrClosed
	}
	id := int(e.subID.Add(1))
	sub := newInlineSub(filter, fn)
	// Subscribed inline, as mochi's Server.Subscribe does, but with the
	// retained messages replayed here, marked as replays (its own replay
	// calls the live handler).
	e.server.Topics.InlineSubscribe(mqtt.InlineSubscription{
		Subscription: packets.Subscription{Filter: filter, Identifier: id},
		Handler:      sub.handle,
	})
	sub.replay(e.server.Topics.Messages(filter))
	var once sync.Once
	return func() {
		once.Do(func() {
			e.server.Topics.InlineUnsubscribe(id, filter)
			sub.cancel()
		})
	}, nil
}

// inlineSub is one Subscribe: the broker calls handle for each message
// published on a matching topic, from the publisher's goroutine, while
// Subscribe replays the retained messages from its own.
//
// No delivery waits for another, except a live message for the retained
// one of its topic that the replay is handing to fn at that moment: the
// older value goes first. mu guards the fields below and is never held
// while fn runs.
type inlineSub struct {
	filter string
	fn     func(bridge.Message)

	mu        sync.Mutex
	changed   sync.Cond // broadcast when a call of fn ends
	calls     int       // calls of fn running; cancel waits until none is
	cancelled bool

	// While the retained messages are replayed, a live message may overtake
	// the replay of an older one on its topic: the topics delivered live in
	// that window are not replayed, so that the older value never comes last.
	replaying bool
	live      map[string]bool
	replayAt  string // the topic whose retained message fn has now; "" none (no topic is empty)
}

func newInlineSub(filter string, fn func(bridge.Message)) *inlineSub {
	s := &inlineSub{filter: filter, fn: fn, replaying: true, live: map[string]bool{}}
	s.changed.L = &s.mu
	return s
}

func (s *inlineSub) handle(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	// mochi's inline matching lets '#' see '$SYS' topics: apply MQTT's rules.
	if !topics.Match(s.filter, pk.TopicName) {
		return
	}
	s.mu.Lock()
	if s.replaying {
		s.live[pk.TopicName] = true // the replay skips the topic from now on
		for s.replayAt == pk.TopicName {
			s.changed.Wait() // for fn to take the older value first
		}
	}
	ok := s.enterLocked()
	s.mu.Unlock()
	if ok {
		s.call(&pk, false)
	}
}

// replay delivers the retained messages the subscription matched when it
// began, one at a time, taking mu only between them.
func (s *inlineSub) replay(retained []packets.Packet) {
	for _, pk := range retained {
		if !topics.Match(s.filter, pk.TopicName) {
			continue
		}
		s.mu.Lock()
		if s.live[pk.TopicName] || !s.enterLocked() {
			s.mu.Unlock()
			continue
		}
		s.replayAt = pk.TopicName
		s.mu.Unlock()
		s.call(&pk, true)
	}
	s.mu.Lock()
	s.replaying, s.live = false, nil
	s.mu.Unlock()
}

// enterLocked counts a call of fn about to start, unless cancelled.
func (s *inlineSub) enterLocked() bool {
	if s.cancelled {
		return false
	}
	s.calls++
	return true
}

// call runs fn for pk, then counts the call as ended and ends the replay's
// hold on pk's topic. pk is not kept: a pointer, not a copy of the 800
// bytes of a packet for each message.
func (s *inlineSub) call(pk *packets.Packet, replay bool) {
	defer func() {
		s.mu.Lock()
		s.calls--
		if replay {
			s.replayAt = ""
		}
		s.changed.Broadcast()
		s.mu.Unlock()
	}()
	s.fn(bridge.Message{
		Topic:           pk.TopicName,
		Payload:         pk.Payload,
		QoS:             pk.FixedHeader.Qos,
		Retain:          pk.FixedHeader.Retain,
		Replay:          replay,
		ResponseTopic:   pk.Properties.ResponseTopic,
		CorrelationData: pk.Properties.CorrelationData,
	})
}

// cancel returns once no call of fn is running, and none will start.
// Deliveries that come meanwhile return at once.
func (s *inlineSub) cancel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = true
	for s.calls > 0 {
		s.changed.Wait()
	}
}

// Close disconnects every MQTT client and stops the broker. It returns within
// Config.CloseTimeout (or when ctx ends, if sooner): clients that cannot be
// told in time are cut off.
func (e *Embedded) Close(ctx context.Context) error {
	e.closeOnce.Do(func() { e.closeErr = e.close(ctx) })
	return e.closeErr
}

func (e *Embedded) close(ctx context.Context) error {
	e.closed.Store(true)
	if e.ownRefusals {
		defer e.cfg.Refusals.Close()
	}
	deadline := time.Now().Add(e.cfg.CloseTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for _, s := range e.connSets() {
		// DISCONNECT packets to clients that do not read must not hold up Close.
		s.hurry(time.Now().Add(time.Until(deadline) / 2))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.server.Close()
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	for _, s := range e.connSets() {
		s.cut()
	}
	<-done // with every connection cut, nothing is left for mochi to wait on
	return fmt.Errorf("close the broker: clients were cut off after %v", e.cfg.CloseTimeout)
}
