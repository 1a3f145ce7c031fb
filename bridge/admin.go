package bridge

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/motehub/motehub/auth"
)

// What the admin view reads and does (web/admin.go): the browser sessions,
// with their subscriptions and queues, a disconnect, and retained publishes
// for the retained-message manager. The types of the MQTT side's admin
// view live here too, as Message does: package broker fills them, package
// web serves them, and neither imports the other.

// ReasonDisconnected ends a session an admin disconnected. 4001 is in the
// range RFC 6455 leaves to applications; a browser's close event carries it.
var ReasonDisconnected = CloseReason{4001, "disconnected by an admin"}

// MaxListedFilters bounds the subscriptions listed for one session or MQTT
// client in the admin view; the count says how many there are in all.
const MaxListedFilters = 100

// SessionInfo describes a browser session (WebSocket or SSE) for the admin view.
type SessionInfo struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Remote    string    `json:"remote"`    // host:port
	Transport string    `json:"transport"` // "ws" or "sse"
	Base      string    `json:"base"`      // the mount ("" is the root)
	Since     time.Time `json:"since"`
	// Subscriptions are its filters, relative to Base, sorted: at most
	// MaxListedFilters of SubscriptionCount.
	Subscriptions     []string `json:"subscriptions"`
	SubscriptionCount int      `json:"subscription_count"`
	// Queued and QueuedBytes are what waits to be written to it now.
	Queued      int `json:"queued"`
	QueuedBytes int `json:"queued_bytes"`
}

// Sessions returns at most limit of the browser sessions open now, from
// offset on, oldest first, and how many there are. It holds the sessions'
// lock to list them, then the fan-out lock once per listed session, for its
// filters: never for work that grows with the sessions.
func (h *Hub) Sessions(offset, limit int) (page []SessionInfo, total int) {
	clients := h.sess.list()
	slices.SortFunc(clients, func(a, b *client) int {
		return cmp.Or(a.opened.Compare(b.opened), cmp.Compare(a.id, b.id))
	})
	total = len(clients)
	offset = min(max(offset, 0), total)
	clients = clients[offset:min(offset+max(limit, 0), total)]
	page = make([]SessionInfo, 0, len(clients))
	for _, c := range clients {
		page = append(page, h.sessionInfo(c))
	}
	return page, total
}

// sessionInfo describes c.
func (h *Hub) sessionInfo(c *client) SessionInfo {
	s := SessionInfo{ID: c.id, User: string(c.who), Remote: c.remote, Transport: c.transport, Base: c.base, Since: c.opened}
	h.fan.mu.Lock()
	s.SubscriptionCount = len(c.filters)
	for f := range c.filters {
		s.Subscriptions = append(s.Subscriptions, f)
	}
	h.fan.mu.Unlock()
	slices.Sort(s.Subscriptions)
	if len(s.Subscriptions) > MaxListedFilters {
		s.Subscriptions = s.Subscriptions[:MaxListedFilters]
	}
	if s.Subscriptions == nil {
		s.Subscriptions = []string{}
	}
	s.Queued, s.QueuedBytes = c.out.length()
	return s
}

// DisconnectSession ends the browser session id with [ReasonDisconnected]
// (a WebSocket's close code 4001; an SSE stream's "event: close"). It
// reports false when no such session is open.
func (h *Hub) DisconnectSession(id string) (SessionInfo, bool) {
	for _, c := range h.sess.list() {
		if c.id == id {
			info := h.sessionInfo(c)
			c.close(ReasonDisconnected)
			return info, true
		}
	}
	return SessionInfo{}, false
}

// length is what waits in q: messages (a conflating queue's topics
// included) and their bytes.
func (q *queue) length() (n, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = len(q.items)
	if q.conflated != nil {
		n += q.conflated.live
	}
	return n, q.bytes
}

// PublishRetained publishes payload (MQTT bytes, as they are) on topic, an
// absolute topic name, as a retained message from who, checked as every
// browser's publish is (Write access; no '$' topic). An empty payload clears
// the topic's retained message. The admin view clears with it and undoes a
// clear with it. Errors are *Error.
func (h *Hub) PublishRetained(ctx context.Context, who auth.Identity, topic string, payload []byte, qos byte) error {
	abs, err := h.checkPublish(who, "", topic)
	if err != nil {
		return err
	}
	if qos > 2 {
		return &Error{Code: CodeBadRequest, Message: "QoS is 0, 1 or 2", Topic: topic}
	}
	return h.publish(ctx, Message{Topic: abs, Payload: payload, QoS: qos, Retain: true}, topic, sourceAPI)
}

// MayPublishRetained reports what PublishRetained(ctx, who, topic, ...)
// would be told by its checks, without publishing: the admin view's dry
// run of a clear. Errors are *Error.
func (h *Hub) MayPublishRetained(who auth.Identity, topic string) error {
	_, err := h.mayPublish(who, "", topic)
	return err
}

// MQTTClient describes a connected MQTT client for the admin view.
type MQTTClient struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`      // "anonymous" without credentials
	Remote    string    `json:"remote"`    // host:port
	Transport string    `json:"transport"` // "tcp", "tls" or "ws"
	Since     time.Time `json:"since"`     // when its CONNECT was read
	// ProtocolVersion is 3 (MQTT 3.1), 4 (3.1.1) or 5.
	ProtocolVersion int  `json:"protocol_version"`
	Clean           bool `json:"clean"` // a clean session (MQTT 5: clean start)
	// Subscriptions are its filters, sorted: at most MaxListedFilters of
	// SubscriptionCount.
	Subscriptions     []string `json:"subscriptions"`
	SubscriptionCount int      `json:"subscription_count"`
	// Queued is how many packets wait to be written to it; Inflight how
	// many QoS 1 and 2 messages wait for its acknowledgement.
	Queued   int `json:"queued"`
	Inflight int `json:"inflight"`
}

// RetainedMessage is a retained message as the broker keeps it.
type RetainedMessage struct {
	Topic   string
	Payload []byte
	QoS     byte
	// Created is when the broker took the message (whole seconds; kept
	// across restarts by the store).
	Created time.Time
	// Origin is the id of the client that published it ("motehub": the hub).
	Origin string
}
