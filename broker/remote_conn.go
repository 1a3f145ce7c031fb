package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/topics"
)

// The Remote drives its connections itself rather than through paho's
// automatic reconnection: each connection is a client of its own (a link:
// paho.mqtt.golang for MQTT 3.1.1, paho.golang for MQTT 5), made by run and
// dropped when it is lost. That way a publish in flight when the
// connection goes fails (paho would keep it and send it again after
// reconnecting, long after the hub told its user it failed, or complete its
// token without an acknowledgement), the wait between attempts has jitter,
// and the subscriptions are made again on run's goroutine, never blocking
// one of paho's.

// subscribeBatch bounds the filters of one SUBSCRIBE packet when the
// subscriptions are made again.
const subscribeBatch = 64

// link is one connection to one node, in one protocol version (remote_v3.go,
// remote_v5.go). It connected once and is never reconnected; it tells its
// conn when it is lost (conn.setLost). No paho type crosses it.
type link interface {
	// publish sends m with its QoS, retain flag and, in MQTT 5, its
	// ResponseTopic and CorrelationData. It returns once the broker has
	// acknowledged it (QoS 1, 2) or it is written (QoS 0), or when ctx ends.
	// A broker's refusal (an MQTT 5 reason code) wraps ErrRefused.
	publish(ctx context.Context, m bridge.Message) error
	// subscribe sends one SUBSCRIBE of filters at QoS 1, after every
	// SUBSCRIBE and UNSUBSCRIBE sent before it and before those sent after,
	// and returns without waiting for the SUBACK.
	subscribe(filters []string) pendingSub
	// unsubscribe sends an UNSUBSCRIBE of filter, in that same order, and
	// does not wait for the answer.
	unsubscribe(filter string)
	// disconnect sends DISCONNECT, closes the connection and waits for the
	// link's goroutines, at most quiesce.
	disconnect(quiesce time.Duration)
}

// pendingSub is a SUBSCRIBE sent.
type pendingSub interface {
	// done is closed once the SUBACK came, or the link gave up on it.
	done() <-chan struct{}
	// result is, once done, how many filters the broker granted and which it
	// refused, or why there is no SUBACK.
	result() (granted int, refused []string, err error)
}

// conn is one connection to the upstream: its link, and whether it is lost.
type conn struct {
	link link
	node upstream // the node it is connected to

	lostOnce sync.Once
	lost     chan struct{}           // closed when the connection is lost
	lostErr  error                   // why; set before lost is closed
	ctx      context.Context         // cancelled, with errConnLost, when lost is closed
	cancel   context.CancelCauseFunc //

	// While connecting: what Close uses to abort the attempt.
	dialCtx    context.Context
	cancelDial context.CancelFunc
	mu         sync.Mutex
	netConn    net.Conn // the dialed connection, until the CONNACK
}

// setLost records that the connection is lost, and why; the first call wins.
func (c *conn) setLost(err error) {
	c.lostOnce.Do(func() {
		c.lostErr = err
		close(c.lost)
		c.cancel(errConnLost)
	})
}

// errConnLost is the cause of a conn's ctx once the connection is lost.
var errConnLost = errors.New("connection lost")

func (c *conn) isLost() bool {
	select {
	case <-c.lost:
		return true
	default:
		return false
	}
}

// run connects, serves the connection until it is lost, and connects again,
// until Close. It moves between the nodes as [rotation] says.
func (r *Remote) run(rot rotation) {
	defer close(r.done)
	bo := backoff{min: minReconnectInterval, max: r.cfg.MaxReconnectInterval}
	var (
		connects  int
		failures  int       // attempts failed since the last connect
		downAt    time.Time // when the upstream was last lost
		lastNode  = -1      // the node of the last connection
		round     roundErrors
		lastRound error // why the last whole round failed, since the last connect
		warned    bool  // a failed round was logged at warn since the last connect
	)
	// failed records a failure of the node in use and waits when the round
	// is over; it reports whether the Remote is still open.
	failed := func(err error) bool {
		round.add(err)
		roundOver := rot.fail()
		r.node.Store(int32(rot.current))
		if !roundOver {
			// Once a whole round failed, Ready keeps naming every node
			// and why while the next round goes on.
			if lastRound != nil {
				err = lastRound
			}
			next := r.nodes[rot.current]
			r.state.setDown(fmt.Errorf("%w; trying %s", err, next)) // err wraps ErrUnavailable
			return true
		}
		err = round.err(len(r.nodes))
		lastRound = err
		round.reset()
		r.state.setDown(err)
		if !warned {
			warned = true
			r.log.Warn("cannot reach the upstream broker; retrying", "err", err, "attempts", failures)
		} else {
			r.log.Debug("cannot reach the upstream broker; retrying", "err", err, "attempts", failures)
		}
		return r.wait(bo.next())
	}
	for {
		node := r.nodes[rot.current]
		cn, err := r.connect(node)
		if errors.Is(err, ErrClosed) {
			return
		}
		if err != nil {
			failures++
			r.log.Debug("cannot reach an upstream node", "node", node, "err", err, "attempts", failures)
			if !failed(err) {
				return
			}
			continue
		}
		connects++
		connected := time.Now()
		err = r.serve(cn, serveInfo{gap: connects > 1, failures: failures, downAt: downAt, from: lastNode})
		lastNode = rot.current
		failures, warned, lastRound = 0, false, nil
		downAt = time.Now()
		// A connection that outlived the longest wait was a good one: the
		// next failure starts a new round, and the waits afresh. One that a
		// node ends at once (an ACL, a node refusing its clients while it
		// rejoins its cluster, a flapping balancer) counts as its node's
		// failure in the round, as a refused attempt would, and keeps the
		// waits growing: nodes that all do so are not hammered in a loop.
		if downAt.Sub(connected) >= r.cfg.MaxReconnectInterval {
			rot.connected()
			round.reset()
			bo.reset()
		}
		if errors.Is(err, ErrClosed) {
			return
		}
		if !failed(err) {
			return
		}
	}
}

// wait sleeps for d and reports whether the Remote is still open.
func (r *Remote) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.quit:
		return false
	}
}

// connect makes one attempt to connect to node, in its protocol. It
// returns ErrClosed when Close ended it.
func (r *Remote) connect(node upstream) (*conn, error) {
	cn := &conn{node: node, lost: make(chan struct{})}
	cn.ctx, cn.cancel = context.WithCancelCause(context.Background())
	cn.dialCtx, cn.cancelDial = context.WithCancel(r.quitCtx)
	defer cn.cancelDial()
	var err error
	if node.protocol == 5 {
		cn.link, err = r.connectV5(cn)
	} else {
		cn.link, err = r.connectV3(cn)
	}
	if err != nil {
		cn.cancel(err)
		return nil, err
	}
	cn.mu.Lock()
	cn.netConn = nil // the link's now
	cn.mu.Unlock()
	return cn, nil
}

// dial opens the network connection for cn's attempt; Close cancels it.
func (r *Remote) dial(cn *conn, u *url.URL) (net.Conn, error) {
	d := &net.Dialer{Timeout: r.cfg.ConnectTimeout, KeepAlive: r.cfg.KeepAlive}
	var (
		nc  net.Conn
		err error
	)
	switch u.Scheme {
	case "mqtt":
		nc, err = d.DialContext(cn.dialCtx, "tcp", u.Host)
	case "mqtts":
		td := &tls.Dialer{NetDialer: d, Config: cn.node.tls}
		nc, err = td.DialContext(cn.dialCtx, "tcp", u.Host)
	case "ws", "wss":
		// paho's WebSocket dialer takes no context: it is bounded by the
		// connect timeout instead.
		nc, err = paho.NewWebsocket(u.String(), cn.node.tls, r.cfg.ConnectTimeout, nil, nil)
	default:
		err = fmt.Errorf("scheme %q", u.Scheme) // parseUpstream let it through: a bug
	}
	if err != nil {
		return nil, err
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.dialCtx.Err() != nil { // Close came during the dial
		_ = nc.Close()
		return nil, ErrClosed
	}
	cn.netConn = nc
	return nc, nil
}

// serveInfo is what serve reports of the connection it serves.
type serveInfo struct {
	gap      bool      // it follows a lost connection
	failures int       // attempts failed before it
	downAt   time.Time // when the last connection was lost
	from     int       // the node of the last connection; -1 for none
}

// serve makes the subscriptions again on cn, reports the upstream up, and
// waits until cn is lost (it returns why) or the Remote is closed (ErrClosed).
func (r *Remote) serve(cn *conn, info serveInfo) error {
	r.subMu.Lock()
	r.conn.Store(cn) // from here on, Subscribe subscribes on cn itself
	filters := r.filters()
	var subs []pendingSub
	for len(filters) > 0 {
		n := min(len(filters), subscribeBatch)
		subs = append(subs, cn.link.subscribe(filters[:n]))
		filters = filters[n:]
	}
	r.subMu.Unlock()
	defer func() {
		r.subMu.Lock()
		r.conn.CompareAndSwap(cn, nil)
		r.subMu.Unlock()
	}()

	subscribed := 0
	var refused []string // made again by retryRefused while cn serves
	defer r.refused.watch(nil)
	for _, sub := range subs {
		granted, no, err := r.awaitSuback(cn, sub)
		if errors.Is(err, ErrClosed) {
			r.disconnect(cn)
			return err
		}
		if err != nil {
			r.state.setDown(err)
			r.log.Warn("subscriptions not confirmed; connecting again", "node", cn.node, "err", err)
			r.disconnect(cn)
			return err
		}
		for _, f := range no {
			r.log.Warn("the upstream broker refused a subscription; asking again in the background", "node", cn.node, "filter", f)
		}
		if len(no) > 0 {
			// Watched from its SUBACK on, not from when the hub is told
			// the Remote is up: a message on it may come at once.
			refused = append(refused, no...)
			r.refused.watch(refused)
		}
		subscribed += granted
	}

	attrs := []any{"node", cn.node, "subscriptions", subscribed, "gap", info.gap}
	if info.gap {
		attrs = append(attrs, "down_for", time.Since(info.downAt).Round(time.Millisecond), "attempts", info.failures)
	}
	if info.from >= 0 && r.nodes[info.from].String() != cn.node.String() {
		attrs = append(attrs, "failover_from", r.nodes[info.from])
	}
	r.log.Info("connected to the upstream broker", attrs...)
	r.state.setUp()
	r.report(Status{Up: true, Gap: info.gap, URL: cn.node.String()})

	// A filter refused as it was made again (an ACL; a cluster node whose
	// storage is still electing a leader refuses QoS 1 subscriptions for a
	// few seconds after another node died) is asked for again, waiting
	// twice as long each time, up to MaxReconnectInterval, for as long as
	// cn serves.
	//
	// A broker may also have made a subscription after all, past its
	// SUBACK (a NATS node whose storage answered late): its messages come.
	// Asked for again, NATS would deliver the messages it has not had
	// acknowledged a second time, older after newer; so a refused filter on
	// which a message arrives is taken as granted instead.
	retry := backoff{min: refusedRetryInterval, max: r.cfg.MaxReconnectInterval}
	timer := time.NewTimer(retry.next())
	defer timer.Stop()
	for len(refused) > 0 {
		select {
		case <-timer.C:
		case <-r.refused.wake:
			refused = r.grantedByDelivery(cn, refused)
			continue
		case <-cn.lost:
		case <-r.quit:
		}
		if cn.isLost() || r.closed.Load() {
			break
		}
		if refused = r.grantedByDelivery(cn, refused); len(refused) == 0 {
			break
		}
		var err error
		if refused, err = r.retryRefused(cn, refused); err != nil {
			break // lost or closed: the select below says which
		}
		r.refused.watch(refused)
		timer.Reset(retry.next())
	}
	select {
	case <-cn.lost:
		err := fmt.Errorf("%w: connection to %s lost: %v", ErrUnavailable, cn.node, cn.lostErr)
		r.conn.CompareAndSwap(cn, nil) // Publish fails at once from here on
		r.state.setDown(err)
		r.log.Warn("lost the upstream broker; reconnecting", "node", cn.node, "err", cn.lostErr)
		r.report(Status{Err: err, URL: cn.node.String()})
		return err
	case <-r.quit:
		r.disconnect(cn)
		r.state.setDown(errClosedRemote)
		r.report(Status{Err: errClosedRemote, URL: cn.node.String()})
		return ErrClosed
	}
}

// grantedByDelivery returns the filters of refused on which no message
// has arrived; those on which one has are taken as granted, and the hub is
// told of a gap: their messages before it did not arrive.
func (r *Remote) grantedByDelivery(cn *conn, refused []string) []string {
	delivering := r.refused.delivering()
	if len(delivering) == 0 {
		return refused
	}
	still := slices.DeleteFunc(refused, func(f string) bool { return slices.Contains(delivering, f) })
	r.refused.watch(still)
	r.log.Info("the upstream broker delivers on subscriptions it had refused: it made them after all", "node", cn.node, "filters", delivering)
	r.report(Status{Up: true, Gap: true, URL: cn.node.String()})
	return still
}

// refusedWatch notes the messages that arrive on filters the broker
// refused, for serve. It holds at most the refused filters of one
// connection.
type refusedWatch struct {
	n    atomic.Int32 // len(filters): dispatch looks at nothing more while 0
	mu   sync.Mutex
	seen []string      // refused filters on which a message arrived
	all  []string      // the refused filters
	wake chan struct{} // capacity 1: a message arrived on one of them
}

// watch makes filters the refused ones. What was seen on those of them
// refused before is kept: a message that arrived while they were asked for
// again still counts.
func (w *refusedWatch) watch(filters []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = slices.Clone(filters)
	w.seen = slices.DeleteFunc(w.seen, func(f string) bool { return !slices.Contains(filters, f) })
	w.n.Store(int32(len(filters)))
}

// saw notes a message on topic; dispatch calls it while a filter is refused.
func (w *refusedWatch) saw(topic string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.all {
		if topics.Covers(f, topic) && !slices.Contains(w.seen, f) {
			w.seen = append(w.seen, f)
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// delivering returns the refused filters on which a message arrived.
func (w *refusedWatch) delivering() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// refusedRetryInterval is the first wait before a filter the broker
// refused as it was made again is asked for again.
const refusedRetryInterval = time.Second

// retryRefused asks cn's broker again for the filters it refused that are
// still wanted, and returns those it refuses still. When it grants some,
// the hub is told of a gap: their messages did not arrive until now. Its
// error (the connection lost, the Remote closed) says to stop asking.
func (r *Remote) retryRefused(cn *conn, refused []string) ([]string, error) {
	r.subMu.Lock()
	wanted := refused[:0]
	r.mu.RLock()
	for _, f := range refused {
		if r.refs[f] > 0 { // not cancelled meanwhile
			wanted = append(wanted, f)
		}
	}
	r.mu.RUnlock()
	var sub pendingSub
	if len(wanted) > 0 {
		sub = cn.link.subscribe(wanted)
	}
	r.subMu.Unlock()
	if sub == nil {
		return nil, nil
	}
	granted, still, err := r.awaitSuback(cn, sub)
	if err != nil {
		return nil, err
	}
	if granted > 0 {
		r.log.Info("the upstream broker took subscriptions it had refused", "node", cn.node, "granted", granted, "still_refused", len(still))
		r.report(Status{Up: true, Gap: true, URL: cn.node.String()})
	} else {
		r.log.Debug("the upstream broker refused subscriptions again", "node", cn.node, "filters", still)
	}
	return still, nil
}

// awaitSuback waits for sub, a subscription on cn, and returns how many
// filters the broker granted and those it refused. Its error wraps
// ErrUnavailable, or is ErrClosed.
func (r *Remote) awaitSuback(cn *conn, sub pendingSub) (granted int, refused []string, err error) {
	timer := time.NewTimer(r.cfg.PublishTimeout)
	defer timer.Stop()
	select {
	case <-sub.done():
	case <-cn.lost:
		return 0, nil, fmt.Errorf("%w: connection lost before the SUBACK", ErrUnavailable)
	case <-timer.C:
		return 0, nil, fmt.Errorf("%w: no SUBACK within %v", ErrUnavailable, r.cfg.PublishTimeout)
	case <-r.quit:
		return 0, nil, ErrClosed
	}
	granted, refused, err = sub.result()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	return granted, refused, nil
}

// disconnect ends cn: it sends DISCONNECT and waits for paho's goroutines,
// within Close's deadline (or a second when not closing).
func (r *Remote) disconnect(cn *conn) {
	quiesce := time.Second
	if d := r.closeDeadline.Load(); d != nil {
		quiesce = max(time.Until(*d), time.Millisecond)
	}
	cn.link.disconnect(quiesce)
}

// report tells RemoteConfig.OnStatus, if set.
func (r *Remote) report(s Status) {
	if r.cfg.OnStatus != nil {
		r.cfg.OnStatus(s)
	}
}

// remoteState is what Ready reports.
type remoteState struct {
	mu  sync.Mutex
	up  bool
	err error // why not up
}

func (s *remoteState) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		return nil
	}
	return s.err
}

func (s *remoteState) setUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up, s.err = true, nil
}

func (s *remoteState) setDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up, s.err = false, err
}

// backoff is the wait before the next attempt: from min, doubling after each
// failure up to max, drawn at random between half and all of it.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 32 {
		d = min(b.max, b.min<<b.n)
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.n = 0 }

// connectError is why a connect failed: the network's error when there is
// one ("dial tcp ...: connection refused"; paho's "network Error : " in
// front of it adds nothing), else paho's.
func connectError(err error) error {
	if op, ok := errors.AsType[*net.OpError](err); ok {
		return op
	}
	return err
}
