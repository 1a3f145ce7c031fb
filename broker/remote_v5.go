package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/motehub/motehub/bridge"
)

// v5Link is a connection in MQTT 5, through paho.golang's low-level client
// (not autopaho: the Remote reconnects and fails over by itself).
//
// paho.golang's Subscribe and Unsubscribe write their packet and then wait
// for the answer, in the caller's goroutine. So that the broker sees them
// in the order the Remote asked (a SUBSCRIBE then an UNSUBSCRIBE of one
// filter must not cross), they go through one queue, ops, that one
// goroutine works through, one after the other.
type v5Link struct {
	client  *paho5.Client
	nc      *lockedConn
	ctx     context.Context // ends with the connection, or disconnect
	cancel  context.CancelFunc
	ops     chan v5Op     // bounded by v5Ops; a full queue makes the Remote wait
	opsDone chan struct{} // closed when runOps returns

	subIDs bool         // the broker takes subscription identifiers (its CONNACK)
	lastID int          // the last subscription identifier given; runOps' own
	copies copyDetector // paho.golang's router goroutine's own
}

// v5Ops bounds the SUBSCRIBE and UNSUBSCRIBE packets queued on one
// connection. Past it the Remote's Subscribe and cancel wait for room (each
// takes one round trip to the broker).
const v5Ops = 256

// v5Op is a SUBSCRIBE (sub set) or an UNSUBSCRIBE (of filter).
type v5Op struct {
	sub    *v5Sub
	filter string
}

// connectV5 connects cn in MQTT 5: clean start, session expiry 0. It returns
// ErrClosed when Close ended the attempt.
func (r *Remote) connectV5(cn *conn) (link, error) {
	nc, err := r.dial(cn, cn.node.url)
	if errors.Is(err, ErrClosed) || r.quitCtx.Err() != nil {
		if nc != nil {
			_ = nc.Close()
		}
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("%w: connecting to %s: %v", ErrUnavailable, cn.node, connectError(err))
	}
	l := &v5Link{nc: &lockedConn{Conn: nc, timeout: r.cfg.PublishTimeout}, ops: make(chan v5Op, v5Ops), opsDone: make(chan struct{})}
	l.client = paho5.NewClient(paho5.ClientConfig{
		ClientID:      r.clientID,
		Conn:          l.nc,
		PacketTimeout: r.cfg.PublishTimeout,
		// paho.golang calls the handlers on one goroutine, one message after
		// the other, in the order the broker sent them; dispatch never blocks.
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			if !l.copies.isCopy(pr.Packet) {
				r.dispatch(v5Message(pr.Packet))
			}
			return true, nil
		}},
		OnClientError: cn.setLost,
		OnServerDisconnect: func(d *paho5.Disconnect) {
			reason := ""
			if d.Properties != nil {
				reason = d.Properties.ReasonString
			}
			cn.setLost(fmt.Errorf("the broker disconnected: %s", reasonWords(d.ReasonCode, reason)))
		},
	})
	ctx, cancel := context.WithTimeout(cn.dialCtx, r.cfg.ConnectTimeout)
	defer cancel()
	noExpiry := uint32(0) // the session ends with the connection, as a clean session in 3.1.1
	connack, err := l.client.Connect(ctx, &paho5.Connect{
		ClientID:     r.clientID,
		CleanStart:   true,
		KeepAlive:    uint16(min(r.cfg.KeepAlive/time.Second, 65535)),
		Username:     cn.node.user,
		UsernameFlag: cn.node.user != "",
		Password:     []byte(cn.node.password),
		PasswordFlag: cn.node.password != "",
		Properties:   &paho5.ConnectProperties{SessionExpiryInterval: &noExpiry},
	})
	switch {
	case r.quitCtx.Err() != nil:
		if err == nil {
			l.disconnect(time.Until(*r.closeDeadline.Load()))
		}
		return nil, ErrClosed
	case connack != nil && connack.ReasonCode >= 0x80:
		reason := ""
		if connack.Properties != nil {
			reason = connack.Properties.ReasonString
		}
		return nil, fmt.Errorf("%w: connecting to %s: refused: %s", ErrUnavailable, cn.node, reasonWords(connack.ReasonCode, reason))
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%w: connecting to %s: no CONNACK within %v", ErrUnavailable, cn.node, r.cfg.ConnectTimeout)
	case err != nil:
		return nil, fmt.Errorf("%w: connecting to %s: %v", ErrUnavailable, cn.node, connectError(err))
	}
	l.subIDs = connack.Properties == nil || connack.Properties.SubIDAvailable
	l.ctx, l.cancel = context.WithCancel(cn.ctx)
	go l.runOps() // ends with l.ctx; disconnect waits for it
	return l, nil
}

// v5Message is the bridge.Message of an incoming PUBLISH. Retain-as-published
// is off in every subscription, so RETAIN is set only on what the broker
// sends for a new subscription: a replay, as in MQTT 3.1.1.
func v5Message(p *paho5.Publish) bridge.Message {
	m := bridge.Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Replay: p.Retain}
	if p.Properties != nil {
		m.ResponseTopic, m.CorrelationData = p.Properties.ResponseTopic, p.Properties.CorrelationData
	}
	return m
}

func (l *v5Link) publish(ctx context.Context, m bridge.Message) error {
	p := &paho5.Publish{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, Payload: m.Payload}
	if m.ResponseTopic != "" || len(m.CorrelationData) > 0 {
		p.Properties = &paho5.PublishProperties{ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
	}
	res, err := l.client.Publish(ctx, p)
	switch {
	case res != nil && res.ReasonCode >= 0x80:
		reason := ""
		if res.Properties != nil {
			reason = res.Properties.ReasonString
		}
		return fmt.Errorf("%w: %s", ErrRefused, reasonWords(res.ReasonCode, reason))
	case err != nil && ctx.Err() != nil:
		return context.Cause(ctx)
	}
	return err
}

func (l *v5Link) subscribe(filters []string) pendingSub {
	s := &v5Sub{filters: filters, ch: make(chan struct{})}
	select {
	case l.ops <- v5Op{sub: s}:
	case <-l.ctx.Done():
		s.finish(0, nil, errors.New("connection closed"))
	}
	return s
}

func (l *v5Link) unsubscribe(filter string) {
	select {
	case l.ops <- v5Op{filter: filter}:
	case <-l.ctx.Done(): // the connection is gone, and its subscriptions with it
	}
}

// runOps sends the SUBSCRIBE and UNSUBSCRIBE packets queued, one after the
// other, until the connection ends; then it fails those left.
func (l *v5Link) runOps() {
	defer close(l.opsDone)
	for {
		select {
		case op := <-l.ops:
			l.do(op)
			continue
		case <-l.ctx.Done():
		}
		for {
			select {
			case op := <-l.ops:
				if op.sub != nil {
					op.sub.finish(0, nil, errors.New("connection closed"))
				}
			default:
				return
			}
		}
	}
}

func (l *v5Link) do(op v5Op) {
	if op.sub == nil {
		// Its answer says nothing the Remote needs: a filter it no longer has.
		_, _ = l.client.Unsubscribe(l.ctx, &paho5.Unsubscribe{Topics: []string{op.filter}})
		return
	}
	// With subscription identifiers, each filter has its own SUBSCRIBE and
	// identifier, so that the copies a broker sends of one message, one per
	// matching subscription (Mosquitto does in MQTT 5), can be told from a
	// message published again (copyDetector).
	batches := [][]string{op.sub.filters}
	if l.subIDs {
		batches = batches[:0]
		for _, f := range op.sub.filters {
			batches = append(batches, []string{f})
		}
	}
	granted, refused := 0, []string(nil)
	for _, filters := range batches {
		g, r, err := l.subscribeOnce(filters)
		if err != nil {
			op.sub.finish(0, nil, err)
			return
		}
		granted, refused = granted+g, append(refused, r...)
	}
	op.sub.finish(granted, refused, nil)
}

// subscribeOnce sends one SUBSCRIBE of filters, at QoS 1, and waits for its
// SUBACK.
func (l *v5Link) subscribeOnce(filters []string) (granted int, refused []string, err error) {
	s := &paho5.Subscribe{Subscriptions: make([]paho5.SubscribeOptions, len(filters))}
	for i, f := range filters {
		// RetainAsPublished off: RETAIN marks the replays only.
		s.Subscriptions[i] = paho5.SubscribeOptions{Topic: f, QoS: 1}
	}
	if l.subIDs {
		l.lastID = l.lastID%maxSubscriptionID + 1
		id := l.lastID
		s.Properties = &paho5.SubscribeProperties{SubscriptionIdentifier: &id}
	}
	suback, err := l.client.Subscribe(l.ctx, s)
	if suback == nil || len(suback.Reasons) != len(filters) {
		if err == nil {
			err = errors.New("a SUBACK of another length than the SUBSCRIBE")
		}
		return 0, nil, err
	}
	// paho.golang reports a refused filter as an error too: the reason
	// codes say which.
	for i, code := range suback.Reasons {
		if code >= 0x80 {
			refused = append(refused, filters[i])
		} else {
			granted++
		}
	}
	return granted, refused, nil
}

// maxSubscriptionID is the largest subscription identifier (a variable
// byte integer).
const maxSubscriptionID = 268_435_455

// copyDetector tells the copies of one message that a broker sends, one per
// matching subscription, from the message itself. MQTT 5 lets a broker send
// a client with overlapping subscriptions one copy of a message per
// subscription (Mosquitto 2 does; mochi sends one), each carrying the
// identifier of its subscription, one after the other. A PUBLISH equal to
// the one before, whose identifier that message has not had yet, is such a
// copy; an equal one with an identifier already seen is the message
// published again. A broker that sends one copy, or takes no identifiers,
// sends nothing the detector drops.
type copyDetector struct {
	last *paho5.Publish
	ids  []int // identifiers of last's copies: at most one per subscription of the Remote
}

func (d *copyDetector) isCopy(p *paho5.Publish) bool {
	id := 0
	if p.Properties != nil && p.Properties.SubscriptionIdentifier != nil {
		id = *p.Properties.SubscriptionIdentifier
	}
	if id == 0 || d.last == nil || slices.Contains(d.ids, id) || !samePublish(d.last, p) {
		d.last, d.ids = p, append(d.ids[:0], id)
		return false
	}
	d.ids = append(d.ids, id)
	return true
}

// samePublish reports whether a and b carry the same message.
func samePublish(a, b *paho5.Publish) bool {
	if a.Topic != b.Topic || a.QoS != b.QoS || a.Retain != b.Retain || !bytes.Equal(a.Payload, b.Payload) {
		return false
	}
	var pa, pb paho5.PublishProperties
	if a.Properties != nil {
		pa = *a.Properties
	}
	if b.Properties != nil {
		pb = *b.Properties
	}
	return pa.ResponseTopic == pb.ResponseTopic && bytes.Equal(pa.CorrelationData, pb.CorrelationData) &&
		pa.ContentType == pb.ContentType
}

func (l *v5Link) disconnect(quiesce time.Duration) {
	quiesce = max(quiesce, time.Millisecond)
	l.nc.setQuiesce(quiesce) // the DISCONNECT's write waits no longer
	_ = l.client.Disconnect(&paho5.Disconnect{ReasonCode: 0})
	if l.cancel != nil {
		l.cancel()
		t := time.NewTimer(quiesce)
		defer t.Stop()
		select {
		case <-l.opsDone:
		case <-t.C:
		}
	}
}

// v5Sub is a SUBSCRIBE queued or sent through paho.golang.
type v5Sub struct {
	filters []string
	ch      chan struct{} // closed by finish
	granted int
	refused []string
	err     error
}

func (s *v5Sub) finish(granted int, refused []string, err error) {
	s.granted, s.refused, s.err = granted, refused, err
	close(s.ch)
}

func (s *v5Sub) done() <-chan struct{} { return s.ch }

func (s *v5Sub) result() (int, []string, error) { return s.granted, s.refused, s.err }

// lockedConn is the network connection as paho.golang writes to it. Every
// packet is written under its lock (paho.golang takes it, a sync.Locker,
// for each packet: without it the parts of two packets written by two
// goroutines could interleave over TLS or WebSocket), and every write has a
// deadline, so that a broker that stops reading cannot hold a Publish, or
// the DISCONNECT, forever.
type lockedConn struct {
	net.Conn
	sync.Mutex
	timeout time.Duration

	quiesceMu sync.Mutex
	quiesce   time.Duration // when set, the write deadline from now on
}

func (c *lockedConn) Write(b []byte) (int, error) {
	c.quiesceMu.Lock()
	d := c.timeout
	if c.quiesce > 0 {
		d = c.quiesce
	}
	c.quiesceMu.Unlock()
	_ = c.SetWriteDeadline(time.Now().Add(d))
	return c.Conn.Write(b)
}

func (c *lockedConn) setQuiesce(d time.Duration) {
	c.quiesceMu.Lock()
	c.quiesce = d
	c.quiesceMu.Unlock()
}

// reasonWords says an MQTT 5 reason code in words, with the broker's
// reason string when it gave one, and the code.
func reasonWords(code byte, reason string) string {
	words, ok := reasonCodes[code]
	if !ok {
		words = "refused"
	}
	if reason != "" {
		words += " (" + reason + ")"
	}
	return fmt.Sprintf("%s, reason code 0x%02x", words, code)
}

// reasonCodes are the MQTT 5 failure reason codes of CONNACK, PUBACK,
// PUBREC, SUBACK and DISCONNECT (section 2.4), in words.
var reasonCodes = map[byte]string{
	0x04: "disconnected with a will message",
	0x80: "unspecified error",
	0x81: "malformed packet",
	0x82: "protocol error",
	0x83: "implementation specific error",
	0x84: "unsupported protocol version",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8B: "server shutting down",
	0x8C: "bad authentication method",
	0x8D: "keep alive timeout",
	0x8E: "session taken over",
	0x8F: "topic filter invalid",
	0x90: "topic name invalid",
	0x93: "receive maximum exceeded",
	0x94: "topic alias invalid",
	0x95: "packet too large",
	0x96: "message rate too high",
	0x97: "quota exceeded",
	0x98: "administrative action",
	0x99: "payload format invalid",
	0x9A: "retain not supported",
	0x9B: "QoS not supported",
	0x9C: "use another server",
	0x9D: "server moved",
	0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded",
	0xA0: "maximum connect time",
	0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}
