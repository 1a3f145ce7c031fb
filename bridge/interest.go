package bridge

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/motehub/motehub/topics"
)

// What the hub subscribes to on the Bus.
//
// By default the hub subscribes once, at New, to Config.BusFilters. With
// Config.SubscribeOnDemand (a hub in front of a remote broker) it subscribes
// only to what its clients want: every session's filters and, for a moment,
// those of long polls and state reads ("leases"), counted per absolute
// filter. The Bus subscriptions are the wanted filters that no other wanted
// filter covers (a client on a/# makes a/b needless), made and cancelled by
// one goroutine, the reconciler, outside every other part's lock (a Bus
// subscription waits for the broker, and cancelling one waits for its
// callbacks, which take the fan-out lock). A filter no longer wanted stays subscribed for
// Config.SubscribeLinger, so that a page reload finds it still followed;
// one covered by another subscription goes at once. Config.KeepSubscribed
// filters are wanted from New to Close (the history records them).
//
// Each Bus subscription remembers the sequence number from which the hub
// has every message it matches (activeFrom): a client resuming from an
// earlier event resyncs instead of replaying a log with holes in it.

// busSub is one subscription of the hub on the Bus.
type busSub struct {
	cancel     func()
	activeFrom uint64    // the hub has every matching message after this seq; guarded by interest.mu
	idleSince  time.Time // zero while wanted; else since when it is not (the reconciler's own)
}

// interest is the hub's Bus subscriptions and what its clients want. It has
// its own lock, which is never held for more than a few map operations per
// filter of one request: the fan-out takes it under its own lock to report
// a change (lock order: fanout.mu, then interest.mu), and the reconciler takes
// it to pick up the changes and to publish a subscription it made. The
// planning works on the reconciler's own copy (reconciler), under no lock.
type interest struct {
	onDemand bool
	linger   time.Duration
	bus      Bus
	deliver  func(Message) // the hub's Bus callback
	fan      *fanout       // where the stream is, for settle and a new subscription's start
	state    *stateStore   // forgets the values no subscription brings any more
	log      *slog.Logger

	mu      sync.Mutex
	delta   map[string]int       // absolute filter → change of the clients registered on it, not yet picked up
	leases  map[string]time.Time // absolute filter → wanted until then, not yet picked up
	subs    map[string]*busSub   // absolute filter → its Bus subscription
	subIdx  topics.Index[string] // the filters of subs, to find those that cover a filter
	changed chan struct{}        // closed and replaced when a subscription is made, and at Close
	closed  bool                 // Close cancelled the subscriptions: make no more

	wake chan struct{} // a nudge for the reconciler (capacity 1)
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the reconciler returns
}

// reconciler is the reconciler goroutine's own state: what the clients want
// and the subscriptions it made, fed by interest's changes.
type reconciler struct {
	wanted map[string]int       // absolute filter → clients registered on it
	leased map[string]time.Time // absolute filter → wanted until then
	own    map[string]*busSub   // the subscriptions it made (interest.subs, unlocked)
	ownIdx topics.Index[string] // the filters of own
	retry  map[string]time.Time // filters the Bus refused: try again after then
	// refused are the filters whose refusal was said at WARN and not yet
	// followed by a subscription: a refusal is said once, not at each
	// retry. At most the filters of target (the others go when it is made).
	refused map[string]bool

	dirty     bool                 // the set of wanted filters changed since target was made
	target    []string             // the minimal cover of what is wanted, sorted
	targetIdx topics.Index[string] // the filters of target
}

// retryRefused is how long the hub waits before it asks the Bus again for a
// subscription it refused (an upstream ACL that may change, a broker that
// was going away). A variable for the tests.
var retryRefused = 10 * time.Second

// interestWait bounds how long a client's start waits for the Bus
// subscriptions its filters need.
const interestWait = 3 * time.Second

// The retained messages of a new subscription: a client's start waits for
// them until none has come for settleQuiet, at most settleMax.
const (
	settleQuiet = 25 * time.Millisecond
	settleMax   = 500 * time.Millisecond
)

func newInterest(onDemand bool, linger time.Duration, bus Bus, state *stateStore, log *slog.Logger) *interest {
	return &interest{
		onDemand: onDemand,
		linger:   linger,
		bus:      bus,
		state:    state,
		log:      log,
		delta:    make(map[string]int),
		leases:   make(map[string]time.Time),
		subs:     make(map[string]*busSub),
		changed:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// nudge asks the reconciler to look again.
func (in *interest) nudge() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// want reports that one more (n = 1) or one fewer (n = -1) client is
// registered on filter (absolute).
func (in *interest) want(filter string, n int) {
	if !in.onDemand {
		return
	}
	in.mu.Lock()
	in.delta[filter] += n
	in.mu.Unlock()
	in.nudge()
}

// follow makes sure the hub is subscribed on the Bus to what filters
// (relative to base) match, and keeps them wanted for at least d: it waits,
// at most interestWait or until ctx ends, for the subscriptions to be made.
// It does nothing for a hub subscribed to fixed BusFilters. It takes the
// interest's lock, and the fan-out's only to wait for messages (settle).
func (in *interest) follow(ctx context.Context, base string, filters []string, d time.Duration) {
	if !in.onDemand {
		return
	}
	abs := make([]string, len(filters))
	for i, f := range filters {
		abs[i] = topics.Mount(base, f)
	}
	until := time.Now().Add(d)
	in.mu.Lock()
	for _, f := range abs {
		if until.After(in.leases[f]) {
			in.leases[f] = until
		}
	}
	in.mu.Unlock()
	in.nudge()

	timer := time.NewTimer(interestWait)
	defer timer.Stop()
	for waited := false; ; waited = true {
		in.mu.Lock()
		followed := in.closed || in.coveredLocked(abs, nil)
		changed := in.changed
		in.mu.Unlock()
		if followed {
			if waited {
				in.settle(ctx)
			}
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// settle waits until no message has come for settleQuiet, at most
// settleMax: a broker sends a new subscription's retained messages right
// after it acknowledges the subscription, and MQTT does not say when they
// end.
func (in *interest) settle(ctx context.Context) {
	deadline := time.NewTimer(settleMax)
	defer deadline.Stop()
	for {
		next := in.fan.eventsAfter(in.fan.position())
		quiet := time.NewTimer(settleQuiet)
		select {
		case <-next:
			quiet.Stop()
		case <-quiet.C:
			return
		case <-deadline.C:
			quiet.Stop()
			return
		case <-ctx.Done():
			quiet.Stop()
			return
		}
	}
}

// covered reports whether a Bus subscription covers each of filters
// (absolute); with after, one that has every message since *after. It
// costs, per filter, the few subscriptions the index finds as candidates.
func (in *interest) covered(filters []string, after *uint64) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.coveredLocked(filters, after)
}

// coveredLocked: see covered. Called under in.mu.
func (in *interest) coveredLocked(filters []string, after *uint64) bool {
	for _, f := range filters {
		covered := false
		// Every filter that covers f matches f read as a topic (its '+' and
		// '#' as level names): the index finds them, Covers decides.
		in.subIdx.Match(f, func(sf string) {
			if !covered && (after == nil || in.subs[sf].activeFrom <= *after) && topics.Covers(sf, f) {
				covered = true
			}
		})
		if !covered {
			return false
		}
	}
	return true
}

// subscribeFixed makes the Bus subscriptions of a hub with fixed BusFilters.
func (in *interest) subscribeFixed(filters []string) error {
	for _, f := range filters {
		cancel, err := in.bus.Subscribe(f, in.deliver)
		if err != nil {
			return err
		}
		in.mu.Lock()
		in.subs[f] = &busSub{cancel: cancel}
		in.subIdx.Add(f, f)
		in.mu.Unlock()
	}
	return nil
}

// reconcile runs until Close: it makes the Bus subscriptions match what
// the clients want (see the top of this file).
func (in *interest) reconcile() {
	defer close(in.done)
	r := &reconciler{
		wanted:  make(map[string]int),
		leased:  make(map[string]time.Time),
		own:     make(map[string]*busSub),
		retry:   make(map[string]time.Time),
		refused: make(map[string]bool),
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := in.reconcileOnce(r)
		timer.Reset(next)
		select {
		case <-in.wake:
		case <-timer.C:
		case <-in.quit:
			return
		}
	}
}

// reconcileOnce makes the subscription changes, the additions first, until
// there are none, and returns how long it may wait before it looks again.
func (in *interest) reconcileOnce(r *reconciler) time.Duration {
	for {
		adds, drops, next := in.plan(r)
		if len(adds) == 0 && len(drops) == 0 {
			return next
		}
		for _, f := range adds {
			if in.quitting() {
				return time.Hour
			}
			in.subscribeBus(r, f)
		}
		for _, f := range drops {
			if in.quitting() {
				return time.Hour
			}
			in.unsubscribeBus(r, f)
		}
	}
}

func (in *interest) quitting() bool {
	select {
	case <-in.quit:
		return true
	default:
		return false
	}
}

// pickUp moves the changes reported since the last call into r. It holds
// in.mu for two map swaps; the merge runs outside it.
func (in *interest) pickUp(r *reconciler) {
	in.mu.Lock()
	var delta map[string]int
	var leases map[string]time.Time
	if len(in.delta) > 0 {
		delta, in.delta = in.delta, make(map[string]int)
	}
	if len(in.leases) > 0 {
		leases, in.leases = in.leases, make(map[string]time.Time)
	}
	in.mu.Unlock()
	for f, n := range delta {
		before := r.wanted[f] > 0
		if r.wanted[f] += n; r.wanted[f] <= 0 {
			delete(r.wanted, f)
		}
		_, leased := r.leased[f]
		if before != (r.wanted[f] > 0) && !leased {
			r.dirty = true
		}
	}
	for f, until := range leases {
		old, leased := r.leased[f]
		if !leased && r.wanted[f] == 0 {
			r.dirty = true
		}
		if until.After(old) {
			r.leased[f] = until
		}
	}
}

// plan decides the next changes: filters to subscribe to, or else ones to
// cancel, or neither and how long until a lease, a linger or a refusal
// ends. It runs on the reconciler's own state, under no lock.
func (in *interest) plan(r *reconciler) (adds, drops []string, next time.Duration) {
	in.pickUp(r)
	now := time.Now()
	next = time.Hour
	for f, until := range r.leased {
		if !until.After(now) {
			delete(r.leased, f)
			if r.wanted[f] == 0 {
				r.dirty = true
			}
			continue
		}
		next = min(next, until.Sub(now))
	}
	if r.dirty {
		r.dirty = false
		wanted := make([]string, 0, len(r.wanted)+len(r.leased))
		for f := range r.wanted {
			wanted = append(wanted, f)
		}
		for f := range r.leased {
			if r.wanted[f] == 0 {
				wanted = append(wanted, f)
			}
		}
		r.target = minimalCover(wanted)
		r.targetIdx = topics.Index[string]{}
		for _, f := range r.target {
			r.targetIdx.Add(f, f)
		}
		for f := range r.refused {
			if _, ok := slices.BinarySearch(r.target, f); !ok {
				delete(r.refused, f) // no longer wanted: said again if wanted again
			}
		}
	}
	for f, at := range r.retry {
		if !now.Before(at) {
			delete(r.retry, f) // due: asked again below if still wanted, forgotten if not
		}
	}
	for _, f := range r.target {
		if s := r.own[f]; s != nil {
			s.idleSince = time.Time{}
			continue
		}
		if at, refused := r.retry[f]; refused && now.Before(at) {
			next = min(next, at.Sub(now))
			continue
		}
		adds = append(adds, f)
	}
	if len(adds) > 0 {
		return adds, nil, 0
	}
	for f, s := range r.own {
		inTarget, covered := false, false
		r.targetIdx.Match(f, func(t string) {
			switch {
			case t == f:
				inTarget = true
			case r.own[t] != nil && topics.Covers(t, f):
				covered = true
			}
		})
		switch {
		case inTarget:
		case covered:
			drops = append(drops, f) // the covering subscription brings its messages
		case s.idleSince.IsZero():
			s.idleSince = now
			next = min(next, in.linger)
		case now.Sub(s.idleSince) >= in.linger:
			drops = append(drops, f)
		default:
			next = min(next, in.linger-now.Sub(s.idleSince))
		}
	}
	return nil, drops, max(next, time.Millisecond)
}

// minimalCover returns the filters of wanted that no other one covers,
// sorted; of two filters that cover each other, the smaller stays. It
// looks, for each filter, only at the candidates an index of the others
// finds (those that match it read as a topic), not at every other filter.
func minimalCover(wanted []string) []string {
	var idx topics.Index[string]
	for _, f := range wanted {
		idx.Add(f, f)
	}
	var out []string
	for _, f := range wanted {
		needed := true
		idx.Match(f, func(g string) {
			if needed && g != f && topics.Covers(g, f) && (!topics.Covers(f, g) || g < f) {
				needed = false
			}
		})
		if needed {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subscribeBus subscribes the hub to filter on the Bus.
func (in *interest) subscribeBus(r *reconciler, filter string) {
	cancel, err := in.bus.Subscribe(filter, in.deliver)
	from := in.fan.position() // every message after it went through the new subscription
	in.mu.Lock()
	if in.closed { // meanwhile
		in.mu.Unlock()
		if err == nil {
			cancel()
		}
		return
	}
	if err != nil {
		in.mu.Unlock()
		if r.refused[filter] {
			in.log.Debug("subscription refused by the bus again", "filter", filter, "retry_in", retryRefused, "err", err)
		} else {
			in.log.Warn("subscription refused by the bus: its messages will not arrive; asked again in the background, said only once", "filter", filter, "retry_every", retryRefused, "err", err)
			r.refused[filter] = true
		}
		r.retry[filter] = time.Now().Add(retryRefused)
		return
	}
	s := &busSub{cancel: cancel, activeFrom: from}
	in.subs[filter] = s
	in.subIdx.Add(filter, filter)
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
	delete(r.retry, filter)
	r.own[filter] = s
	r.ownIdx.Add(filter, filter)
	if r.refused[filter] {
		delete(r.refused, filter)
		in.log.Info("subscription refused before accepted by the bus now", "filter", filter)
		return
	}
	in.log.Debug("subscribed on the bus", "filter", filter)
}

// unsubscribeBus cancels the hub's subscription to filter, and forgets the
// last values of the topics no other subscription brings any more: they
// would go stale unnoticed.
func (in *interest) unsubscribeBus(r *reconciler, filter string) {
	in.mu.Lock()
	s, closed := in.subs[filter], in.closed
	delete(in.subs, filter)
	in.subIdx.Remove(filter, filter)
	in.mu.Unlock()
	delete(r.own, filter)
	r.ownIdx.Remove(filter, filter)
	if closed || s == nil {
		return // Close cancels it
	}
	s.cancel()
	brought := false
	onMatch := func(string) { brought = true }
	in.state.forget(func(topic string) bool {
		if !topics.Match(filter, topic) {
			return false
		}
		brought = false
		r.ownIdx.Match(topic, onMatch)
		return !brought
	})
	in.log.Debug("unsubscribed on the bus", "filter", filter)
}

// stop stops the reconciler and cancels every Bus subscription. A
// reconciler waiting for the broker past ctx is left to end on its own
// (when the Bus is closed, at the latest); its subscription is then not
// cancelled, which a closing Bus does not need.
func (in *interest) stop(ctx context.Context) {
	if in.onDemand {
		close(in.quit)
		select {
		case <-in.done:
		case <-ctx.Done():
			in.log.Warn("a subscription on the bus still waits for the broker")
		}
	}
	in.mu.Lock()
	subs := in.subs
	in.subs = make(map[string]*busSub)
	in.subIdx = topics.Index[string]{}
	if !in.closed {
		in.closed = true
		close(in.changed) // follows waiting for a subscription end
	}
	in.mu.Unlock()
	for _, s := range subs {
		s.cancel()
	}
}

// busFilters returns the filters the hub is subscribed to on the Bus now,
// sorted.
func (in *interest) busFilters() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	fs := make([]string, 0, len(in.subs))
	for f := range in.subs {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return fs
}

// count is how many Bus subscriptions the hub holds.
func (in *interest) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.subs)
}

// raiseActiveFrom makes seq the earliest start of every Bus subscription:
// the hub may have missed messages before it (see Hub.Resync).
func (in *interest) raiseActiveFrom(seq uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, s := range in.subs {
		s.activeFrom = max(s.activeFrom, seq)
	}
}

// notFollowedReason is why a client resuming on filters that the hub did
// not follow all along resyncs.
func notFollowedReason(filters []string) ResyncNotice {
	return ResyncNotice{Code: ResyncNotFollowed, Reason: "this hub was not following " + strings.Join(filters, ", ") + " since that event"}
}
