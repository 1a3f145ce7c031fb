package broker

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/topics"
)

// hook is the broker's policy, and the MQTT door of auth. At CONNECT it
// refuses, each with its reason code: the reserved client id of mochi's own
// client, connections past the limits, wrong credentials (throttled), a Will
// whose topic the user may not publish to, a client id whose session belongs
// to another user, and a new session past the cap (after ending the session
// disconnected longest ago, if there is one). It answers every publish and
// subscription (and each delivery) with auth's decision, re-checks a resumed
// session's subscriptions and queued messages against the rights in force,
// and disconnects clients that publish too fast.
type hook struct {
	mqtt.HookBase
	server      *mqtt.Server
	cfg         *Config
	connections func(ip string) (total, fromIP int)
	store       *storeHook // nil without a store: told what the policy removes from sessions

	// limiters holds each connected client's *rate.Limiter (none when
	// Config.MessageRate is negative): written at connect and disconnect,
	// read at every PUBLISH, by every client's goroutine at once, so a
	// sync.Map (no lock on the read). Bounded by the connected clients.
	limiters sync.Map

	authFailures, refused, rateLimited, connectTimeouts atomic.Uint64
	willsRefused, clientIDsRefused, sessionsRefused     atomic.Uint64
	sessionsEnded, subscriptionsRefused                 atomic.Uint64
	subscriptionsDropped, queuedDropped                 atomic.Uint64
}

func newHook(server *mqtt.Server, cfg *Config, connections func(string) (int, int), store *storeHook) *hook {
	return &hook{server: server, cfg: cfg, connections: connections, store: store}
}

func (h *hook) ID() string { return "motehub" }

// hookProvides is the set of mochi's hook methods hook implements. mochi
// asks each hook Provides for every packet, several times: a table lookup.
var hookProvides = hookSet(
	mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish,
	mqtt.OnSessionEstablished, mqtt.OnPublish, mqtt.OnSubscribed, mqtt.OnDisconnect,
)

func (h *hook) Provides(b byte) bool { return hookProvides[b] }

// hookSet is the set of mochi hook methods given, as a table.
func hookSet(methods ...byte) *[256]bool {
	var set [256]bool
	for _, m := range methods {
		set[m] = true
	}
	return &set
}

func (h *hook) stats() Stats {
	return Stats{
		AuthFailures:         h.authFailures.Load(),
		ConnectionsRefused:   h.refused.Load(),
		RateLimited:          h.rateLimited.Load(),
		ConnectTimeouts:      h.connectTimeouts.Load(),
		WillsRefused:         h.willsRefused.Load(),
		ClientIDsRefused:     h.clientIDsRefused.Load(),
		SessionsRefused:      h.sessionsRefused.Load(),
		SessionsEnded:        h.sessionsEnded.Load(),
		SubscriptionsRefused: h.subscriptionsRefused.Load(),
		SubscriptionsDropped: h.subscriptionsDropped.Load(),
		QueuedDropped:        h.queuedDropped.Load(),
	}
}

// refuse answers a CONNECT with code (mochi turns it into MQTT 3.1.1's
// return code for such clients) and counts it.
func (h *hook) refuse(cl *mqtt.Client, code packets.Code, count *atomic.Uint64) error {
	count.Add(1)
	_ = h.server.SendConnack(cl, code, false, nil)
	return fmt.Errorf("broker: connection refused: %w", code)
}

// OnConnect decides whether a CONNECT is accepted; OnConnectAuthenticate
// then only confirms it. Everything is decided here, where each refusal can
// carry its own reason code.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if c, ok := cl.Net.Conn.(interface{ connectRead() }); ok {
		c.connectRead() // CONNECT arrived in time
	}
	if cl.ID == mqtt.InlineClientId {
		return h.refuse(cl, packets.ErrClientIdentifierNotValid, &h.clientIDsRefused)
	}
	total, fromIP := h.connections(httpx.Host(cl.Net.Remote))
	if total > h.cfg.MaxConnections || fromIP > h.cfg.MaxConnectionsPerAddress {
		return h.refuse(cl, packets.ErrQuotaExceeded, &h.refused)
	}
	if pk.Properties.AuthenticationMethod != "" { // MQTT 5 enhanced authentication: none is offered
		return h.refuse(cl, packets.ErrBadAuthenticationMethod, &h.authFailures)
	}
	if code, ok := h.authenticate(cl, pk); !ok {
		return h.refuse(cl, code, &h.authFailures)
	}
	if will := cl.Properties.Will; will.Flag == 1 {
		// A Will is a PUBLISH made later: a topic name (no wildcards), not the
		// server's ($SYS), and one its user may publish to.
		if topics.ValidateTopic(will.TopicName) != nil || strings.HasPrefix(will.TopicName, "$") {
			h.cfg.Logger.Info("mqtt connection refused: its Will names no topic a client may publish to",
				"client", cl.ID, "remote", cl.Net.Remote, "will_topic", will.TopicName)
			return h.refuse(cl, packets.ErrTopicNameInvalid, &h.willsRefused)
		}
		if !h.OnACLCheck(cl, will.TopicName, true) {
			h.cfg.Logger.Info("mqtt connection refused: its Will names a topic the user may not publish to",
				"client", cl.ID, "remote", cl.Net.Remote, "user", string(identityOf(cl)), "will_topic", will.TopicName)
			return h.refuse(cl, packets.ErrNotAuthorized, &h.willsRefused)
		}
	}
	old, exists := h.server.Clients.Get(cl.ID)
	if exists && h.cfg.Authorizer.Enabled() && identityOf(old) != identityOf(cl) {
		h.cfg.Logger.Info("mqtt connection refused: its client id names another user's session",
			"client", cl.ID, "remote", cl.Net.Remote, "user", string(identityOf(cl)))
		return h.refuse(cl, packets.ErrClientIdentifierNotValid, &h.clientIDsRefused)
	}
	if !exists && !h.makeRoomForSession(cl) {
		return h.refuse(cl, packets.ErrQuotaExceeded, &h.sessionsRefused)
	}
	return nil
}

// OnConnectAuthenticate lets in what OnConnect accepted (mochi refuses every
// client when no hook provides it).
func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// authenticate checks a CONNECT's credentials and sets the client's user
// name to the identity it proved (or leaves it empty for anonymous).
func (h *hook) authenticate(cl *mqtt.Client, pk packets.Packet) (packets.Code, bool) {
	authz := h.cfg.Authorizer
	if !authz.Enabled() {
		return packets.CodeSuccess, true
	}
	name := string(pk.Connect.Username)
	if id, ok := httpIdentity(cl); ok && name == "" {
		// MQTT over WebSocket from a page whose user the HTTP layer knows.
		if !authz.Known(id) {
			return packets.ErrNotAuthorized, false
		}
		cl.Properties.Username = []byte(id)
		return packets.CodeSuccess, true
	}
	if name == "" { // no credentials at all guess nothing: neither throttled nor counted
		if _, err := authz.Anonymous(); err != nil {
			return packets.ErrBadUsernameOrPassword, false
		}
		return packets.CodeSuccess, true
	}
	ip := httpx.Host(cl.Net.Remote)
	if ok, _ := h.cfg.Throttle.Attempt(ip, name); !ok {
		return packets.ErrBadUsernameOrPassword, false
	}
	var err error
	if name == auth.Anonymous {
		err = auth.ErrBadCredentials // the name is reserved for clients without credentials
	} else {
		_, err = authz.Authenticate(name, string(pk.Connect.Password))
	}
	if err != nil {
		return packets.ErrBadUsernameOrPassword, false
	}
	h.cfg.Throttle.Succeed(ip, name)
	return packets.CodeSuccess, true
}

// makeRoomForSession makes sure a client with a new client id fits within
// Config.MaxSessions: at the cap, the session disconnected longest ago ends.
// It reports false when every session is connected.
func (h *hook) makeRoomForSession(cl *mqtt.Client) bool {
	if sessions(h.server) < h.cfg.MaxSessions {
		return true
	}
	var oldest *mqtt.Client
	for _, c := range h.server.Clients.GetAll() {
		if c.Net.Inline || c.StopTime() == 0 {
			continue // mochi's own, or connected
		}
		if oldest == nil || c.StopTime() < oldest.StopTime() {
			oldest = c
		}
	}
	if oldest == nil {
		h.cfg.Logger.Warn("mqtt connection refused: every session is in use", "client", cl.ID,
			"remote", cl.Net.Remote, "max_sessions", h.cfg.MaxSessions)
		return false
	}
	h.endSession(oldest)
	h.cfg.Logger.Info("mqtt session ended to make room for a new one", "client", oldest.ID,
		"max_sessions", h.cfg.MaxSessions)
	return true
}

// sessions counts the sessions the broker keeps: its clients, connected or
// not, less mochi's own inline client.
func sessions(server *mqtt.Server) int { return server.Clients.Len() - 1 }

// endSession ends the session of a disconnected client as its expiry would
// (its subscriptions and queued messages go, here and in the store), unless
// the client is back.
func (h *hook) endSession(cl *mqtt.Client) {
	if h.server.EndSession(cl) {
		h.sessionsEnded.Add(1)
	}
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

// OnSessionEstablish runs once a CONNECT is accepted, before mochi hands
// the client the session it resumes, under that client id's session lock:
// what the session holds is checked against the rights in force now (they
// may have changed since, by a reload), and what the user may no longer read
// is dropped. A session another user made (OnConnect refused such clients,
// but one may have been made since) is emptied: the client gets a new one.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	old, ok := h.server.Clients.Get(cl.ID)
	if !ok || old == cl || pk.Connect.Clean || old.Properties.Clean && old.Properties.ProtocolVersion < 5 {
		return // nothing to resume: mochi starts a new session
	}
	theirs := h.cfg.Authorizer.Enabled() && identityOf(old) != identityOf(cl)
	var dropped []packets.Subscription
	for filter, sub := range old.State.Subscriptions.GetAll() {
		if !theirs && h.OnACLCheck(cl, filter, false) {
			continue
		}
		old.State.Subscriptions.Delete(filter)
		if h.server.Topics.Unsubscribe(filter, old.ID) {
			atomic.AddInt64(&h.server.Info.Subscriptions, -1)
		}
		dropped = append(dropped, sub)
	}
	queued := 0
	for _, m := range old.State.Inflight.GetAll(false) {
		if !theirs && (m.FixedHeader.Type != packets.Publish || h.OnACLCheck(cl, m.TopicName, false)) {
			continue
		}
		if old.State.Inflight.Delete(m.PacketID) {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
			queued++
			if h.store != nil {
				h.store.OnQosDropped(old, m)
			}
		}
	}
	if len(dropped) == 0 && queued == 0 {
		return
	}
	if h.store != nil && len(dropped) > 0 {
		h.store.OnUnsubscribed(old, packets.Packet{Filters: dropped})
	}
	h.subscriptionsDropped.Add(uint64(len(dropped)))
	h.queuedDropped.Add(uint64(queued))
	msg := "mqtt session resumed without what its user may no longer read"
	if theirs {
		msg = "mqtt session of another user emptied for a new one"
	}
	h.cfg.Logger.Info(msg, "client", cl.ID, "user", string(identityOf(cl)),
		"subscriptions_dropped", len(dropped), "queued_dropped", queued)
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.cfg.Logger.Info("mqtt client connected", "client", cl.ID, "remote", cl.Net.Remote,
		"listener", cl.Net.Listener, "user", string(identityOf(cl)), "clean", cl.Properties.Clean)
	if h.cfg.MessageRate < 0 {
		return
	}
	h.limiters.Store(cl, rate.NewLimiter(rate.Limit(h.cfg.MessageRate), int(2*h.cfg.MessageRate)+1))
}

// OnSubscribed counts and logs the filters refused for the client's quota
// (Config.MaxSubscriptions).
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	quota := packets.ErrQuotaExceeded.Code
	if cl.Properties.ProtocolVersion < 5 {
		quota = packets.ErrUnspecifiedError.Code // mochi's 3.1.1 form of it
	}
	refused := 0
	for i, c := range codes {
		// In 3.1.1 a refusal is a refusal: the quota's is one the ACL allows, at the cap.
		if c == quota && i < len(pk.Filters) && cl.State.Subscriptions.Len() >= h.cfg.MaxSubscriptions &&
			h.OnACLCheck(cl, pk.Filters[i].Filter, false) {
			refused++
		}
	}
	if refused > 0 {
		h.subscriptionsRefused.Add(uint64(refused))
		h.cfg.Logger.Info("mqtt subscriptions refused: the client holds the most allowed", "client", cl.ID,
			"refused", refused, "max_subscriptions", h.cfg.MaxSubscriptions)
	}
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
	h.limiters.Delete(cl)
}

// OnPublish disconnects a client past its message rate. The hub's own
// client (inline) has no limiter.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	v, ok := h.limiters.Load(cl)
	if ok && !v.(*rate.Limiter).Allow() {
		h.rateLimited.Add(1)
		_ = h.server.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}
