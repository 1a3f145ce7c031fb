package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/bridge"
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
	// messages past it are dropped for that client. Default 512.
	MaxPendingWrites int32
	// SysInterval is how often the $SYS topics are refreshed. Default 10 s.
	SysInterval time.Duration
	// WriteTimeout bounds every write to an MQTT client. Default 10 s.
	WriteTimeout time.Duration
	// CloseTimeout bounds [Embedded.Close]. Default 5 s.
	CloseTimeout time.Duration
	// Logger receives the broker's logs; mochi's routine messages are kept to
	// warnings unless it is enabled for debug. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = 1 << 20
	}
	if c.MaxPendingWrites == 0 {
		c.MaxPendingWrites = 512
	}
	if c.SysInterval < time.Second {
		c.SysInterval = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrClosed is returned by the methods of a closed broker.
var ErrClosed = errors.New("broker: closed")

// Embedded is the mochi-mqtt broker running inside the hub. It implements
// bridge.Bus.
type Embedded struct {
	cfg    Config
	server *mqtt.Server
	self   *mqtt.Client // the hub's own client, for what the hub publishes
	tcp    *tcpListener // nil without Config.Addr
	subID  atomic.Int64
	closed atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var _ bridge.Bus = (*Embedded)(nil)

// Start binds the listeners and starts the broker. Connections wait in the
// listeners' backlog until [Embedded.Open]: the hub subscribes first, so that
// it misses no device's message (and mochi's retained-message scan for the
// hub's subscription does not race with devices' retained publishes).
func Start(cfg Config) (*Embedded, error) {
	cfg.setDefaults()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	caps.MaximumClientWritesPending = cfg.MaxPendingWrites
	server := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		SysTopicResendInterval: int64(cfg.SysInterval / time.Second),
		Logger:                 mochiLogger(cfg.Logger),
	})
	self := server.NewClient(nil, mqtt.LocalListener, "motehub", true)
	self.Properties.ProtocolVersion = 5 // so that v5 properties (request/response) are kept
	e := &Embedded{cfg: cfg, server: server, self: self}
	if err := server.AddHook(&hook{server: server}, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	if cfg.Addr != "" {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("broker: listen for MQTT on %s: %w", cfg.Addr, err)
		}
		e.tcp = newTCPListener("mqtt", ln, cfg.WriteTimeout)
		if err := server.AddListener(e.tcp); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("broker: add listener: %w", err)
		}
	}
	if err := server.Serve(); err != nil {
		_ = e.Close(context.Background())
		return nil, fmt.Errorf("broker: start: %w", err)
	}
	return e, nil
}

// Open lets MQTT clients in. Calling it more than once is harmless.
func (e *Embedded) Open() {
	if e.tcp != nil {
		e.tcp.admit()
	}
}

// Addr is the address MQTT clients connect to, or nil without a TCP listener.
func (e *Embedded) Addr() net.Addr {
	if e.tcp == nil {
		return nil
	}
	return e.tcp.ln.Addr()
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
		return fmt.Errorf("broker: publish to %q: %w", m.Topic, err)
	}
	return nil
}

// Subscribe calls fn for every message whose topic matches filter, starting
// with the retained ones, until cancel is called.
func (e *Embedded) Subscribe(filter string, fn func(bridge.Message)) (cancel func(), err error) {
	if err := topics.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("broker: subscribe %q: %w", filter, err)
	}
	if e.closed.Load() {
		return nil, ErrClosed
	}
	id := int(e.subID.Add(1))
	var (
		mu        sync.RWMutex // held for reading while fn runs, so cancel can wait it out
		cancelled bool
	)
	handler := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		// mochi's inline matching lets '#' see '$SYS' topics: apply MQTT's rules.
		if !topics.Match(filter, pk.TopicName) {
			return
		}
		mu.RLock()
		defer mu.RUnlock()
		if !cancelled {
			fn(bridge.Message{
				Topic:           pk.TopicName,
				Payload:         pk.Payload,
				QoS:             pk.FixedHeader.Qos,
				Retain:          pk.FixedHeader.Retain,
				ResponseTopic:   pk.Properties.ResponseTopic,
				CorrelationData: pk.Properties.CorrelationData,
			})
		}
	}
	// mochi does not match an inline "a/#" to the topic "a"; its parent level is
	// added with the same identifier (so no message is seen twice) and without
	// a second replay of the retained messages.
	parent, hasParent := strings.CutSuffix(filter, "/#")
	if hasParent {
		e.server.Topics.InlineSubscribe(mqtt.InlineSubscription{
			Subscription: packets.Subscription{Filter: parent, Identifier: id},
			Handler:      handler,
		})
	}
	if err := e.server.Subscribe(filter, id, handler); err != nil {
		if hasParent {
			e.server.Topics.InlineUnsubscribe(id, parent)
		}
		return nil, fmt.Errorf("broker: subscribe %q: %w", filter, err)
	}
	if hasParent {
		// mochi's retained replay for "a/#" misses "a" too.
		for _, pk := range e.server.Topics.Messages(parent) {
			handler(nil, packets.Subscription{}, pk)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = e.server.Unsubscribe(filter, id)
			if hasParent {
				e.server.Topics.InlineUnsubscribe(id, parent)
			}
			mu.Lock()
			cancelled = true
			mu.Unlock()
		})
	}, nil
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
	deadline := time.Now().Add(e.cfg.CloseTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if e.tcp != nil {
		// DISCONNECT packets to clients that do not read must not hold up Close.
		e.tcp.hurry(time.Now().Add(time.Until(deadline) / 2))
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
	if e.tcp != nil {
		e.tcp.cut()
	}
	<-done // with every connection cut, nothing is left for mochi to wait on
	return fmt.Errorf("broker: close: clients were cut off after %v", e.cfg.CloseTimeout)
}

// hook is the broker's policy: for now every client on the hub's listeners
// is anonymous and may do everything, except take the reserved client id of
// the hub's own inline client.
type hook struct {
	mqtt.HookBase
	server *mqtt.Server
}

func (h *hook) ID() string { return "motehub" }

func (h *hook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *hook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if cl.ID == mqtt.InlineClientId {
		_ = h.server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return fmt.Errorf("broker: client id %q is reserved: %w", cl.ID, packets.ErrClientIdentifierNotValid)
	}
	return nil
}

func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// mochiLogger quiets mochi: it logs routine events (hook added, listener
// attached, server started) at info, and those are the hub's to announce.
func mochiLogger(log *slog.Logger) *slog.Logger {
	log = log.With("component", "mochi")
	if log.Enabled(context.Background(), slog.LevelDebug) {
		return log
	}
	return slog.New(minLevel{Handler: log.Handler(), min: slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
