package broker

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/topics"
)

// hook is the broker's policy, and the MQTT door of auth: it refuses the
// reserved client id of the hub's own client, connections past the limits,
// and wrong credentials (throttled), answers every publish and
// subscription (and each delivery) with auth's decision, and disconnects
// clients that publish too fast.
type hook struct {
	mqtt.HookBase
	server      *mqtt.Server
	cfg         *Config
	connections func(ip string) (total, fromIP int)

	mu       sync.Mutex
	limiters map[*mqtt.Client]*rate.Limiter
	holding  map[*mqtt.Client]bool // holds retained: true as a writer, false as a reader
	parked   map[*mqtt.Client]packets.Packet

	// retained serialises mochi's retained-message scans (a SUBSCRIBE, the
	// hub's own Subscribe) with retained publishes: mochi reads a topic's
	// retained path without the lock its writer takes (mochi-mqtt/server#200).
	retained sync.RWMutex

	authFailures, refused, rateLimited atomic.Uint64
}

func newHook(server *mqtt.Server, cfg *Config, connections func(string) (int, int)) *hook {
	return &hook{server: server, cfg: cfg, connections: connections,
		limiters: make(map[*mqtt.Client]*rate.Limiter), holding: make(map[*mqtt.Client]bool),
		parked: make(map[*mqtt.Client]packets.Packet)}
}

func (h *hook) ID() string { return "motehub" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck,
		mqtt.OnSessionEstablished, mqtt.OnPublish, mqtt.OnDisconnect,
		mqtt.OnPacketRead, mqtt.OnPacketProcessed,
	}, []byte{b})
}

func (h *hook) stats() Stats {
	return Stats{AuthFailures: h.authFailures.Load(), ConnectionsRefused: h.refused.Load(), RateLimited: h.rateLimited.Load()}
}

// refuse answers a CONNECT with code (or its MQTT 3 equivalent).
func (h *hook) refuse(cl *mqtt.Client, code packets.Code) error {
	h.refused.Add(1)
	_ = h.server.SendConnack(cl, code, false, nil)
	return fmt.Errorf("broker: connection refused: %w", code)
}

func (h *hook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if cl.ID == mqtt.InlineClientId {
		return h.refuse(cl, packets.ErrClientIdentifierNotValid)
	}
	total, fromIP := h.connections(hostOf(cl.Net.Remote))
	if total > h.cfg.MaxConnections || fromIP > h.cfg.MaxConnectionsPerAddress {
		code := packets.ErrQuotaExceeded
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable // MQTT 3 has no code for a quota
		}
		return h.refuse(cl, code)
	}
	return nil
}

// httpIdentity is the user the HTTP layer authenticated for an MQTT over
// WebSocket client, if any.
func httpIdentity(cl *mqtt.Client) (auth.Identity, bool) {
	if c, ok := cl.Net.Conn.(interface{ httpIdentity() (auth.Identity, bool) }); ok {
		return c.httpIdentity()
	}
	return "", false
}

// identityOf is who an MQTT client is: its user name, checked at CONNECT,
// or anonymous.
func identityOf(cl *mqtt.Client) auth.Identity {
	if len(cl.Properties.Username) == 0 {
		return auth.Anonymous
	}
	return auth.Identity(cl.Properties.Username)
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	authz := h.cfg.Authorizer
	if !authz.Enabled() {
		return true
	}
	ip := hostOf(cl.Net.Remote)
	name := string(pk.Connect.Username)
	if id, ok := httpIdentity(cl); ok && name == "" {
		// MQTT over WebSocket from a page whose user the HTTP layer knows.
		if !authz.Known(id) {
			h.authFailures.Add(1)
			return false
		}
		cl.Properties.Username = []byte(id)
		return true
	}
	// No credentials at all guesses nothing: neither throttled nor counted.
	if name != "" {
		if ok, _ := h.cfg.Throttle.Allow(ip, name); !ok {
			h.authFailures.Add(1)
			return false
		}
	}
	var err error
	switch name {
	case "":
		_, err = authz.Anonymous()
	case auth.Anonymous:
		err = auth.ErrBadCredentials // the name is reserved for clients without credentials
	default:
		_, err = authz.Authenticate(name, string(pk.Connect.Password))
	}
	if err != nil {
		h.authFailures.Add(1)
		if name != "" {
			h.cfg.Throttle.Fail(ip, name)
		}
		return false
	}
	h.cfg.Throttle.Succeed(ip, name)
	return true
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	authz, id := h.cfg.Authorizer, identityOf(cl)
	if write {
		return authz.Allowed(id, auth.Write, topic)
	}
	if rest, shared := strings.CutPrefix(topic, "$share/"); shared {
		_, topic, _ = strings.Cut(rest, "/") // $share/<group>/<filter>
	}
	if topics.IsWildcard(topic) { // a SUBSCRIBE; deliveries are checked topic by topic
		allowed, _ := authz.Subscription(id, topic)
		return allowed
	}
	return authz.Allowed(id, auth.Read, topic)
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.cfg.Logger.Info("mqtt client connected", "client", cl.ID, "remote", cl.Net.Remote,
		"listener", cl.Net.Listener, "user", string(identityOf(cl)), "clean", cl.Properties.Clean)
	if h.cfg.MessageRate < 0 {
		return
	}
	h.mu.Lock()
	h.limiters[cl] = rate.NewLimiter(rate.Limit(h.cfg.MessageRate), int(2*h.cfg.MessageRate)+1)
	h.mu.Unlock()
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if !cl.Net.Inline && cl.Net.Conn != nil { // not the hub's own client, nor one restored from the store
		reason := "client closed"
		if cause := cl.StopCause(); cause != nil {
			reason = cause.Error()
		} else if err != nil {
			reason = err.Error()
		}
		h.cfg.Logger.Info("mqtt client disconnected", "client", cl.ID, "remote", cl.Net.Remote, "reason", reason)
	}
	h.mu.Lock()
	delete(h.limiters, cl)
	h.mu.Unlock()
}

// OnPublish disconnects a client past its message rate. The hub's own
// client (inline) has no limiter.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.mu.Lock()
	lim := h.limiters[cl]
	h.mu.Unlock()
	if lim != nil && !lim.Allow() {
		h.rateLimited.Add(1)
		_ = h.server.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnPacketRead takes the retained lock for a packet that will touch the
// retained messages: a retained PUBLISH as a writer, a SUBSCRIBE as a
// reader. mochi calls OnPacketProcessed after processing a packet, except
// one that fails its own validation, which is repeated here so that every
// lock taken is released.
//
// It also parks, for the time mochi processes a SUBSCRIBE or UNSUBSCRIBE,
// the broker's own in-flight message that has the same packet identifier.
// The client's identifiers and the broker's are separate spaces in MQTT,
// but mochi keeps both in one map and refuses such a SUBSCRIBE with 0x91
// "packet identifier in use" (not even a valid MQTT 3 code), or ignores the
// UNSUBSCRIBE: a device that resubscribes while its session's QoS 1
// messages are being resent would lose its subscriptions. mochi reads a
// client's packets one at a time, so no acknowledgement can need the parked
// entry meanwhile, and its own identifiers only come back to this one after
// 65,535 others.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch {
	case pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Retain &&
		pk.PublishValidate(h.server.Options.Capabilities.TopicAliasMaximum) == packets.CodeSuccess:
		h.retained.Lock()
		h.hold(cl, true)
	case pk.FixedHeader.Type == packets.Subscribe && pk.SubscribeValidate() == packets.CodeSuccess:
		h.retained.RLock()
		h.hold(cl, false)
		h.park(cl, pk.PacketID)
	case pk.FixedHeader.Type == packets.Unsubscribe && pk.UnsubscribeValidate() == packets.CodeSuccess:
		h.park(cl, pk.PacketID)
	}
	return pk, nil
}

// park sets aside cl's in-flight message with packet identifier id, if any.
func (h *hook) park(cl *mqtt.Client, id uint16) {
	if pk, ok := cl.State.Inflight.Get(id); ok {
		cl.State.Inflight.Delete(id)
		h.mu.Lock()
		h.parked[cl] = pk
		h.mu.Unlock()
	}
}

func (h *hook) hold(cl *mqtt.Client, writer bool) {
	h.mu.Lock()
	h.holding[cl] = writer
	h.mu.Unlock()
}

// OnPacketProcessed releases what OnPacketRead took for this client's packet.
func (h *hook) OnPacketProcessed(cl *mqtt.Client, _ packets.Packet, _ error) {
	h.mu.Lock()
	writer, held := h.holding[cl]
	delete(h.holding, cl)
	parked, wasParked := h.parked[cl]
	delete(h.parked, cl)
	h.mu.Unlock()
	if wasParked && !cl.State.Inflight.Set(parked) {
		h.cfg.Logger.Error("mqtt in-flight message replaced while parked", "client", cl.ID, "packet_id", parked.PacketID)
	}
	switch {
	case !held:
	case writer:
		h.retained.Unlock()
	default:
		h.retained.RUnlock()
	}
}
