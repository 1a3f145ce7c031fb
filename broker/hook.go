package broker

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/refusals"
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

	// limiters holds the *rate.Limiter of each connected client that has
	// published (none when Config.MessageRate is negative): made at its
	// first PUBLISH (an idle device has none: 180 bytes less each), read at
	// every PUBLISH, by every client's goroutine at once, so a sync.Map (no
	// lock on the read); deleted when the client goes. Only the client's own
	// goroutine publishes for it, before it is told that the client went
	// (OnDisconnect), so no limiter outlives its client. Bounded by the
	// connected clients.
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
// return code for such clients), counts it and reports it with reason.
func (h *hook) refuse(cl *mqtt.Client, code packets.Code, count *atomic.Uint64, reason string) error {
	count.Add(1)
	h.cfg.Refusals.Refused(door(cl.Net.Listener), cl.Net.Remote, string(cl.Properties.Username), reason,
		slog.String("client", cl.ID), codeAttr(code))
	_ = h.server.SendConnack(cl, code, false, nil)
	return refusedError{code}
}

// refusedError is how OnConnect refuses a client: reported already, unlike
// the codes mochi refuses with itself (see reportRefusal).
type refusedError struct{ code packets.Code }

func (e refusedError) Error() string { return "connection refused: " + e.code.Error() }
func (e refusedError) Unwrap() error { return e.code }

// door is the door of clients of a mochi listener.
func door(listener string) refusals.Door {
	if listener == wsListenerID {
		return refusals.MQTTWebSocket
	}
	return refusals.MQTT
}

// codeAttr is a reason code as a refusal's line shows it.
func codeAttr(code packets.Code) slog.Attr {
	return slog.String("code", fmt.Sprintf("%#02x %s", code.Code, code.Reason))
}

// reportRefusal reports a connection that mochi refused itself, before
// the hook saw its CONNECT (a protocol version it does not speak, an empty
// client id without clean session, the server full): err, which ended the
// connection from remote, is then a bare reason code.
func reportRefusal(log *refusals.Log, listener string, remote net.Addr, err error) {
	if code, ok := err.(packets.Code); ok && code.Code >= packets.ErrUnspecifiedError.Code {
		log.Refused(door(listener), remote.String(), "", "refused by the broker: "+code.Reason, codeAttr(code))
	}
}

// OnConnect decides whether a CONNECT is accepted; OnConnectAuthenticate
// then only confirms it. Everything is decided here, where each refusal can
// carry its own reason code.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if c, ok := cl.Net.Conn.(interface{ connectRead() }); ok {
		c.connectRead() // CONNECT arrived in time
	}
	if cl.ID == mqtt.InlineClientId {
		return h.refuse(cl, packets.ErrClientIdentifierNotValid, &h.clientIDsRefused, "the client id is the hub's own")
	}
	total, fromIP := h.connections(httpx.Host(cl.Net.Remote))
	if total > h.cfg.MaxConnections || fromIP > h.cfg.MaxConnectionsPerAddress {
		return h.refuse(cl, packets.ErrQuotaExceeded, &h.refused, fmt.Sprintf(
			"too many connections: %d in all (at most %d), %d from this address (at most %d)",
			total, h.cfg.MaxConnections, fromIP, h.cfg.MaxConnectionsPerAddress))
	}
	if m := pk.Properties.AuthenticationMethod; m != "" { // MQTT 5 enhanced authentication: none is offered
		return h.refuse(cl, packets.ErrBadAuthenticationMethod, &h.authFailures,
			fmt.Sprintf("enhanced authentication (%q) is not offered", m))
	}
	if code, reason, ok := h.authenticate(cl, pk); !ok {
		return h.refuse(cl, code, &h.authFailures, reason)
	}
	if will := cl.Properties.Will(); will.Flag == 1 {
		// A Will is a PUBLISH made later: a topic name (no wildcards), not the
		// server's ($SYS), and one its user may publish to.
		if topics.ValidateTopic(will.TopicName) != nil || strings.HasPrefix(will.TopicName, "$") {
			return h.refuse(cl, packets.ErrTopicNameInvalid, &h.willsRefused,
				fmt.Sprintf("its Will's topic %q is not one a client may publish to", will.TopicName))
		}
		if !h.OnACLCheck(cl, will.TopicName, true) {
			return h.refuse(cl, packets.ErrNotAuthorized, &h.willsRefused,
				fmt.Sprintf("its Will's topic %q is not one the user may publish to", will.TopicName))
		}
	}
	old, exists := h.server.Clients.Get(cl.ID)
	if exists && h.cfg.Authorizer.Enabled() && identityOf(old) != identityOf(cl) {
		return h.refuse(cl, packets.ErrClientIdentifierNotValid, &h.clientIDsRefused,
			"its client id names another user's session")
	}
	if !exists && !h.makeRoomForSession() {
		return h.refuse(cl, packets.ErrQuotaExceeded, &h.sessionsRefused,
			fmt.Sprintf("every session is in use (at most %d)", h.cfg.MaxSessions))
	}
	return nil
}

// OnConnectAuthenticate lets in what OnConnect accepted (mochi refuses every
// client when no hook provides it).
func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// authenticate checks a CONNECT's credentials and sets the client's user
// name to the identity it proved (or leaves it empty for anonymous). A
// refusal comes with its reason, for the log.
func (h *hook) authenticate(cl *mqtt.Client, pk packets.Packet) (_ packets.Code, reason string, ok bool) {
	authz := h.cfg.Authorizer
	if !authz.Enabled() {
		return packets.CodeSuccess, "", true
	}
	name := string(pk.Connect.Username)
	if id, ok := httpIdentity(cl); ok && name == "" {
		// MQTT over WebSocket from a page whose user the HTTP layer knows.
		cl.Properties.Username = []byte(id)
		if !authz.Known(id) {
			return packets.ErrNotAuthorized, "the page's user is no longer in the users file", false
		}
		return packets.CodeSuccess, "", true
	}
	if name == "" { // no credentials at all guess nothing: neither throttled nor counted
		if _, err := authz.Anonymous(); err != nil {
			return packets.ErrBadUsernameOrPassword, "credentials required (the users file lets no anonymous client in)", false
		}
		return packets.CodeSuccess, "", true
	}
	ip := httpx.Host(cl.Net.Remote)
	if ok, wait := h.cfg.Throttle.Attempt(ip, name); !ok {
		return packets.ErrBadUsernameOrPassword, fmt.Sprintf(
			"too many failed logins for this name or from this address: locked out for %v", wait.Round(time.Second)), false
	}
	var err error
	if name == auth.Anonymous {
		err = fmt.Errorf("%w: the name %q is for clients without credentials", auth.ErrBadCredentials, name)
	} else {
		_, err = authz.Authenticate(name, string(pk.Connect.Password))
	}
	if err != nil {
		return packets.ErrBadUsernameOrPassword, err.Error(), false
	}
	h.cfg.Throttle.Succeed(ip, name)
	return packets.CodeSuccess, "", true
}

// makeRoomForSession makes sure a client with a new client id fits within
// Config.MaxSessions: at the cap, the session disconnected longest ago ends.
// It reports false when every session is connected.
func (h *hook) makeRoomForSession() bool {
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
	if limiter := h.limiter(cl); limiter != nil && !limiter.Allow() {
		h.rateLimited.Add(1)
		h.cfg.Refusals.CutOff(door(cl.Net.Listener), cl.Net.Remote, string(cl.Properties.Username),
			fmt.Sprintf("publishes faster than %g messages a second", h.cfg.MessageRate),
			slog.String("client", cl.ID), codeAttr(packets.ErrMessageRateTooHigh))
		_ = h.server.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// limiter is cl's message rate limiter, made at its first PUBLISH; nil for
// the hub's own client and when Config.MessageRate is negative.
func (h *hook) limiter(cl *mqtt.Client) *rate.Limiter {
	if v, ok := h.limiters.Load(cl); ok {
		return v.(*rate.Limiter)
	}
	if h.cfg.MessageRate < 0 || cl.Net.Inline {
		return nil
	}
	v, _ := h.limiters.LoadOrStore(cl, rate.NewLimiter(rate.Limit(h.cfg.MessageRate), int(2*h.cfg.MessageRate)+1))
	return v.(*rate.Limiter)
}
