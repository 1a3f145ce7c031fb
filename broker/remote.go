package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/topics"
)

// ErrUnavailable is returned, wrapped, when the upstream broker cannot take
// a message now: not connected, the connection lost before the broker
// acknowledged, or no acknowledgement in time.
var ErrUnavailable = errors.New("upstream unavailable")

// ErrRefused is returned, wrapped, by [Remote.Subscribe] when the upstream
// broker refuses the subscription (a SUBACK failure, usually its ACL).
var ErrRefused = errors.New("refused by the upstream broker")

// errClosedRemote is why a closed Remote is not ready.
var errClosedRemote = fmt.Errorf("%w: closed", ErrUnavailable)

// Remote is a client of an existing MQTT broker or cluster (Mosquitto, EMQX,
// HiveMQ, VerneMQ, ...) that implements bridge.Bus, so that several hub
// replicas can stand in front of one cluster. It speaks MQTT 3.1.1 with a
// clean session, through paho.mqtt.golang, or MQTT 5 with a clean start and
// no session expiry, through paho.golang (RemoteConfig.Protocol); no paho
// type leaves this package.
//
// A Remote connects in the background and keeps doing so: it never gives up,
// waiting up to RemoteConfig.MaxReconnectInterval between attempts. After
// every connect it makes every subscription again before it reports itself
// up. While it is down, Publish fails at once with [ErrUnavailable] and
// Subscribe succeeds: the subscription is made when the upstream comes back.
//
// Given the nodes of a cluster (RemoteConfig.URLs), it is connected to one
// at a time, starting with one drawn at random so that replicas spread. When
// that node fails it tries the next at once, and waits only after every node
// failed in a row (see [rotation]); it stays on the node that took it until
// that one fails. A failover is a new connection, reported as such (Status
// with Gap); a Publish waiting for its acknowledgement from the lost node
// fails with [ErrUnavailable]. [Remote.URL] is the node in use.
//
// # Concurrency contract
//
//   - Subscription callbacks run on the client's router goroutine (paho's,
//     or paho.golang's), one message at a time and in the order the broker
//     sent them (which keeps each topic's messages in order). A callback
//     must not block: no waiting for a Publish, and no call to Subscribe or
//     a cancel function, which wait for running callbacks. Nor may anyone
//     call Subscribe or cancel while holding a lock that a callback takes.
//     Each incoming PUBLISH calls each matching subscription once; a
//     callback may run before its Subscribe has returned (the retained
//     messages).
//   - In MQTT 5, SUBSCRIBE and UNSUBSCRIBE packets go out one at a time,
//     each after the answer to the one before (a queue of at most 256 per
//     connection, worked by one goroutine of the connection): Subscribe
//     and cancel wait while it is full.
//   - RemoteConfig.OnStatus runs on the Remote's own goroutine, in order.
//   - All exported methods are safe for concurrent use. Close is safe to call
//     more than once.
type Remote struct {
	cfg      RemoteConfig
	nodes    []upstream   // the cluster's nodes, as given
	node     atomic.Int32 // index in nodes of the one in use, or being tried
	clientID string
	log      *slog.Logger

	// subMu orders the changes of subscriptions with what is sent upstream
	// for them, so that the broker sees SUBSCRIBE and UNSUBSCRIBE in the
	// order the filters' reference counts changed. Held around paho calls
	// that do not wait for the network (at most its write timeout).
	subMu sync.Mutex
	// mu guards index and refs; the router holds it for reading while it
	// calls the callbacks, so that removing a subscription waits for them.
	mu    sync.RWMutex
	index topics.Index[*remoteSub]
	refs  map[string]int // subscriptions per filter: one upstream subscription each

	conn       atomic.Pointer[conn] // the open connection; nil while down
	deliveries atomic.Uint64        // numbers the incoming messages (bridge.Message.Delivery)
	state      remoteState
	closed     atomic.Bool
	quit       chan struct{}   // closed by Close
	quitCtx    context.Context // cancelled, with ErrClosed, by Close
	cancelQuit context.CancelCauseFunc
	done       chan struct{} // closed when run returns

	refused refusedWatch // the filters refused as they were made again, while serve asks for them

	closeOnce     sync.Once
	closeErr      error
	closeDeadline atomic.Pointer[time.Time] // set by Close before it closes quit
}

var _ bridge.Bus = (*Remote)(nil)

// remoteSub is one call of Subscribe.
type remoteSub struct {
	filter string // as subscribed upstream
	match  string // what topics it matches: filter, or a shared subscription's FILTER
	fn     func(bridge.Message)
}

// matchFilter checks a filter given to Subscribe and returns the filter
// that the topics of its messages match: filter itself or, for a shared
// subscription in MQTT 5, the part after $share/GROUP/.
func (r *Remote) matchFilter(filter string) (string, error) {
	if err := topics.ValidateFilter(filter); err != nil {
		return "", err
	}
	if strings.HasPrefix(filter, "$queue/") {
		return "", errors.New("$queue/ subscriptions are not supported: write $share/GROUP/FILTER (MQTT 5)")
	}
	rest, shared := strings.CutPrefix(filter, "$share/")
	if !shared {
		return filter, nil
	}
	if r.nodes[0].protocol != 5 {
		return "", errors.New("shared subscriptions are not supported: every replica needs every message its clients want " +
			"(with MQTT 5 upstream, --upstream-protocol 5, $share/GROUP/FILTER is taken)")
	}
	group, match, ok := strings.Cut(rest, "/")
	if !ok || group == "" || strings.ContainsAny(group, "+#") || match == "" {
		return "", errors.New("a shared subscription is $share/GROUP/FILTER, with a GROUP without + or #")
	}
	return match, nil
}

// ConnectRemote checks cfg and returns a Remote that connects to cfg.URL in
// the background. It returns at once, without waiting for the upstream: see
// [Remote.Ready] and RemoteConfig.OnStatus. Its only errors are for a
// RemoteConfig it cannot use (wrapping [ErrBadURL]). Close the Remote when
// done with it.
func ConnectRemote(cfg RemoteConfig) (*Remote, error) {
	cfg.setDefaults()
	nodes, err := parseNodes(&cfg)
	if err != nil {
		return nil, err
	}
	r := &Remote{
		cfg:      cfg,
		nodes:    nodes,
		clientID: newClientID(cfg.ClientIDPrefix),
		refs:     make(map[string]int),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		refused:  refusedWatch{wake: make(chan struct{}, 1)},
	}
	r.quitCtx, r.cancelQuit = context.WithCancelCause(context.Background())
	rot := newRotation(len(nodes))
	r.node.Store(int32(rot.current))
	r.log = cfg.Logger.With("component", "upstream", "client_id", r.clientID)
	r.state.err = fmt.Errorf("%w: connecting to %s", ErrUnavailable, strings.Join(r.URLs(), ", "))
	go r.run(rot) // ends after quit is closed; Close waits for done
	return r, nil
}

// ClientID is the MQTT client id this Remote connects with.
func (r *Remote) ClientID() string { return r.clientID }

// URL is the URL, without credentials, of the node in use: the one
// connected to or, while down, the one being tried or tried next.
func (r *Remote) URL() string { return r.nodes[r.node.Load()].String() }

// Protocol is the MQTT version spoken upstream: 4 (MQTT 3.1.1) or 5.
func (r *Remote) Protocol() int { return r.nodes[0].protocol }

// URLs are the URLs of every node, as given, without credentials.
func (r *Remote) URLs() []string {
	urls := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		urls[i] = n.String()
	}
	return urls
}

// Ready returns nil while the upstream is usable: connected, and every
// subscription made on this connection. Otherwise it says why not, wrapping
// [ErrUnavailable]. The reason names the upstream's URL, never its
// credentials.
func (r *Remote) Ready() error {
	if r.closed.Load() {
		return errClosedRemote
	}
	return r.state.ready()
}

// Publish sends m upstream with m's QoS and retain flag. It returns once the
// broker has acknowledged it (PUBACK for QoS 1, PUBCOMP for QoS 2) or, for
// QoS 0, once it is written to the connection. It fails at once, wrapping
// [ErrUnavailable], while the upstream is down, and wrapping it too when the
// connection is lost before the acknowledgement (the message may or may not
// have arrived; it is never sent again later) or when none comes within ctx
// or RemoteConfig.PublishTimeout. After Close it returns [ErrClosed].
//
// m's ResponseTopic and CorrelationData are MQTT 5 properties: in MQTT 5
// they are sent, in MQTT 3.1.1 left out. In MQTT 5 a broker may refuse the
// message in its PUBACK (an ACL): the error then wraps [ErrRefused].
func (r *Remote) Publish(ctx context.Context, m bridge.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	if err := topics.ValidateTopic(m.Topic); err != nil {
		// A PUBLISH with a wildcard would make the broker drop the connection.
		return fmt.Errorf("publish to %q: %w", m.Topic, err)
	}
	if m.QoS > 2 {
		return fmt.Errorf("publish to %q: QoS %d: want 0, 1 or 2", m.Topic, m.QoS)
	}
	cn := r.conn.Load()
	if cn == nil || cn.isLost() {
		return fmt.Errorf("%w: publish to %q: not connected", ErrUnavailable, m.Topic)
	}
	// One context ends the wait, and says why: the connection lost, Close,
	// the PublishTimeout, or ctx.
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(cn.ctx, func() { cancel(errConnLost) })()
	defer context.AfterFunc(r.quitCtx, func() { cancel(ErrClosed) })()
	wctx, cancelWait := context.WithTimeoutCause(pctx, r.cfg.PublishTimeout, errNoAck)
	defer cancelWait()
	err := cn.link.publish(wctx, m)
	if err == nil {
		return nil
	}
	switch cause := context.Cause(wctx); {
	case cause == nil && errors.Is(err, ErrRefused):
		return fmt.Errorf("publish to %q: %w", m.Topic, err)
	case cause == nil:
		return fmt.Errorf("%w: publish to %q: %v", ErrUnavailable, m.Topic, err)
	case errors.Is(cause, errConnLost):
		return fmt.Errorf("%w: publish to %q: connection lost before the broker acknowledged (the message may or may not have arrived)", ErrUnavailable, m.Topic)
	case errors.Is(cause, ErrClosed):
		return ErrClosed
	case errors.Is(cause, errNoAck):
		return fmt.Errorf("%w: publish to %q: no acknowledgement within %v", ErrUnavailable, m.Topic, r.cfg.PublishTimeout)
	default:
		return fmt.Errorf("publish to %q: %w", m.Topic, cause)
	}
}

// errNoAck is why a Publish stopped waiting after RemoteConfig.PublishTimeout.
var errNoAck = errors.New("no acknowledgement in time")

// Subscribe calls fn for every message whose topic matches filter, until
// cancel is called: the retained ones the broker sends for the subscription
// first, then each message as it arrives. Connected, it returns once the
// broker has acknowledged the subscription, with an error wrapping
// [ErrRefused] when the broker refused it; down, it returns at once and the
// subscription is made when the upstream is back. Either way the
// subscription is made again, retained messages and all, after every
// reconnect.
//
// Subscriptions to the same filter share one upstream subscription; each new
// one subscribes again, so that the broker sends the retained messages for
// it, and those (with Retain set) reach every subscription of the filter.
// Each incoming PUBLISH calls every subscription whose filter matches its
// topic once, however many filters match. Mosquitto 2 and mochi send a
// client one copy of a message however many of its subscriptions match; a
// broker that sends a copy per matching subscription (MQTT 3.1.1 allows it)
// makes each of them call the callbacks, so the hub's filters should not
// overlap.
//
// In MQTT 5 (RemoteConfig.Protocol), filter may be a shared subscription,
// $share/GROUP/FILTER: the broker hands each message matching FILTER to one
// subscriber of the group (one replica of a deployment), and fn is called
// for the messages whose topic matches FILTER that this Remote is sent. In
// MQTT 3.1.1 shared subscriptions are refused: the standard has none, and
// a broker would read $share/... as an ordinary filter. $queue/ (EMQX's
// older form) is refused in both: write $share/GROUP/ instead.
//
// After cancel returns, fn is not called again; cancel unsubscribes upstream
// when it ends the filter's last subscription (without waiting for the
// broker's answer). Calling it again does nothing.
func (r *Remote) Subscribe(filter string, fn func(bridge.Message)) (cancel func(), err error) {
	match, err := r.matchFilter(filter)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", filter, err)
	}
	s := &remoteSub{filter: filter, match: match, fn: fn}
	r.subMu.Lock()
	if r.closed.Load() {
		r.subMu.Unlock()
		return nil, ErrClosed
	}
	r.mu.Lock()
	r.index.Add(match, s)
	r.refs[filter]++
	r.mu.Unlock()
	cn := r.conn.Load()
	var sub pendingSub
	if cn != nil {
		sub = cn.link.subscribe([]string{filter})
	}
	r.subMu.Unlock()

	var once sync.Once
	cancel = func() { once.Do(func() { r.unsubscribe(s) }) }
	if sub == nil {
		return cancel, nil
	}
	_, refused, err := r.awaitSuback(cn, sub)
	switch {
	case len(refused) > 0:
		cancel()
		return nil, fmt.Errorf("subscribe to %q: %w", filter, ErrRefused)
	case errors.Is(err, ErrClosed):
		cancel()
		return nil, ErrClosed
	case err != nil:
		// The connection is going or gone; the next one makes it again.
		r.log.Debug("subscription not confirmed; it is made again on reconnect", "filter", filter, "err", err)
	}
	return cancel, nil
}

// unsubscribe removes s, waiting for its callback if it runs, and
// unsubscribes upstream when s was the last subscription of its filter.
func (r *Remote) unsubscribe(s *remoteSub) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	r.mu.Lock()
	r.index.Remove(s.match, s)
	r.refs[s.filter]--
	last := r.refs[s.filter] == 0
	if last {
		delete(r.refs, s.filter)
	}
	r.mu.Unlock()
	if cn := r.conn.Load(); last && cn != nil {
		// Not waited for: messages still on their way match no subscription
		// and are dropped, and the connection's writer sends packets in order.
		cn.link.unsubscribe(s.filter)
	}
}

// filters returns the filters subscribed to, each once.
func (r *Remote) filters() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fs := make([]string, 0, len(r.refs))
	for f := range r.refs {
		fs = append(fs, f)
	}
	return fs
}

// dispatch calls each subscription's callback whose filter matches m's
// topic once. The links call it for every incoming PUBLISH, on their
// client's one goroutine that hands them over in order.
func (r *Remote) dispatch(m bridge.Message) {
	// One number for every callback of this message: the hub takes it once
	// however many of its filters match.
	m.Delivery = r.deliveries.Add(1)
	if r.refused.n.Load() > 0 {
		r.refused.saw(m.Topic)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.index.Match(m.Topic, func(s *remoteSub) { s.fn(m) })
}

// Close disconnects from the upstream and stops reconnecting. It returns
// once the connection's goroutines have ended, within RemoteConfig.CloseTimeout
// or ctx, whichever ends first; after that no callback runs. Publish and
// Subscribe then return [ErrClosed]. Calling Close again returns the first
// call's result.
func (r *Remote) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { r.closeErr = r.close(ctx) })
	return r.closeErr
}

func (r *Remote) close(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(r.cfg.CloseTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r.closeDeadline.Store(&deadline)
	r.subMu.Lock() // no Subscribe is half done
	r.closed.Store(true)
	r.subMu.Unlock()
	close(r.quit)
	r.cancelQuit(ErrClosed)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-r.done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	return fmt.Errorf("close the upstream connection: it had not ended after %v", time.Since(start).Round(time.Millisecond))
}
