package bridge

import (
	"context"
	"slices"
	"strings"
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
// one goroutine, the reconciler, outside the hub's lock (a Bus subscription
// waits for the broker, and cancelling one waits for its callbacks, which
// take the lock). A filter no longer wanted stays subscribed for
// Config.SubscribeLinger, so that a page reload finds it still followed;
// one covered by another subscription goes at once.
//
// Each Bus subscription remembers the sequence number from which the hub
// has every message it matches (activeFrom): a client resuming from an
// earlier event resyncs instead of replaying a log with holes in it.

// busSub is one subscription of the hub on the Bus.
type busSub struct {
	cancel     func()
	activeFrom uint64    // the hub has every matching message after this seq
	idleSince  time.Time // zero while wanted; else since when it is not
}

// interest is the hub's Bus subscriptions and what its clients want. All
// fields but wake, quit and done are guarded by the hub's lock.
type interest struct {
	onDemand bool
	linger   time.Duration

	wanted  map[string]int       // absolute filter → clients registered on it
	leases  map[string]time.Time // absolute filter → wanted until then
	subs    map[string]*busSub   // absolute filter → its Bus subscription
	retry   map[string]time.Time // filters the Bus refused: try again after then
	changed chan struct{}        // closed and replaced when a subscription is made

	wake chan struct{} // a nudge for the reconciler (capacity 1)
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the reconciler returns
}

// retryRefused is how long the hub waits before it asks the Bus again for a
// subscription it refused (an upstream ACL that may change, a broker that
// was going away).
const retryRefused = 10 * time.Second

// interestWait bounds how long a client's start waits for the Bus
// subscriptions its filters need.
const interestWait = 3 * time.Second

// The retained messages of a new subscription: a client's start waits for
// them until none has come for settleQuiet, at most settleMax.
const (
	settleQuiet = 25 * time.Millisecond
	settleMax   = 500 * time.Millisecond
)

func newInterest(onDemand bool, linger time.Duration) interest {
	return interest{
		onDemand: onDemand,
		linger:   linger,
		wanted:   make(map[string]int),
		leases:   make(map[string]time.Time),
		subs:     make(map[string]*busSub),
		retry:    make(map[string]time.Time),
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

// indexAddLocked registers c for filter f (relative to its base).
func (h *Hub) indexAddLocked(c *client, f string) {
	abs := topics.Mount(c.base, f)
	h.index.Add(abs, c)
	if h.interest.onDemand {
		if h.interest.wanted[abs]++; h.interest.wanted[abs] == 1 {
			h.interest.nudge()
		}
	}
}

// indexRemoveLocked unregisters c from filter f (relative to its base).
func (h *Hub) indexRemoveLocked(c *client, f string) {
	abs := topics.Mount(c.base, f)
	h.index.Remove(abs, c)
	if h.interest.onDemand {
		if h.interest.wanted[abs]--; h.interest.wanted[abs] <= 0 {
			delete(h.interest.wanted, abs)
			h.interest.nudge()
		}
	}
}

// follow makes sure the hub is subscribed on the Bus to what filters
// (relative to base) match, and keeps them wanted for at least d: it waits,
// at most interestWait or until ctx ends, for the subscriptions to be made.
// It does nothing for a hub subscribed to fixed BusFilters.
func (h *Hub) follow(ctx context.Context, base string, filters []string, d time.Duration) {
	if !h.interest.onDemand {
		return
	}
	abs := make([]string, len(filters))
	for i, f := range filters {
		abs[i] = topics.Mount(base, f)
	}
	until := time.Now().Add(d)
	h.mu.Lock()
	for _, f := range abs {
		if until.After(h.interest.leases[f]) {
			h.interest.leases[f] = until
		}
	}
	h.interest.nudge()
	h.mu.Unlock()

	timer := time.NewTimer(interestWait)
	defer timer.Stop()
	for waited := false; ; waited = true {
		h.mu.Lock()
		followed := h.closed || h.coveredLocked(abs, nil)
		changed := h.interest.changed
		h.mu.Unlock()
		if followed {
			if waited {
				h.settle(ctx)
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
func (h *Hub) settle(ctx context.Context) {
	deadline := time.NewTimer(settleMax)
	defer deadline.Stop()
	for {
		next := h.eventsAfter(h.position())
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

// coveredLocked reports whether a Bus subscription covers each of filters
// (absolute); with after, one that has every message since *after.
func (h *Hub) coveredLocked(filters []string, after *uint64) bool {
	for _, f := range filters {
		covered := false
		for sf, s := range h.interest.subs {
			if (after == nil || s.activeFrom <= *after) && topics.Covers(sf, f) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// subscribeFixed makes the Bus subscriptions of a hub with fixed BusFilters.
func (h *Hub) subscribeFixed() error {
	for _, f := range h.cfg.BusFilters {
		cancel, err := h.bus.Subscribe(f, h.deliver)
		if err != nil {
			return err
		}
		h.mu.Lock()
		h.interest.subs[f] = &busSub{cancel: cancel}
		h.mu.Unlock()
	}
	return nil
}

// reconcile runs until Close: it makes the Bus subscriptions match what
// the clients want (see the top of this file).
func (h *Hub) reconcile() {
	defer close(h.interest.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := h.reconcileOnce()
		timer.Reset(next)
		select {
		case <-h.interest.wake:
		case <-timer.C:
		case <-h.interest.quit:
			return
		}
	}
}

// reconcileOnce makes one subscription change at a time, the additions
// first, and returns how long it may wait before it looks again.
func (h *Hub) reconcileOnce() time.Duration {
	for {
		select {
		case <-h.interest.quit:
			return time.Hour
		default:
		}
		add, drop, next := h.plan()
		switch {
		case add != "":
			h.subscribeBus(add)
		case drop != "":
			h.unsubscribeBus(drop)
		default:
			return next
		}
	}
}

// plan decides the next change: a filter to subscribe to, or one to
// cancel, or neither and how long until a lease or a linger ends.
func (h *Hub) plan() (add, drop string, next time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := &h.interest
	now := time.Now()
	next = time.Hour
	wanted := make([]string, 0, len(in.wanted)+len(in.leases))
	for f := range in.wanted {
		wanted = append(wanted, f)
	}
	for f, until := range in.leases {
		if !until.After(now) {
			delete(in.leases, f)
			continue
		}
		next = min(next, until.Sub(now))
		if in.wanted[f] == 0 {
			wanted = append(wanted, f)
		}
	}
	target := minimalCover(wanted)
	for _, f := range target {
		if s := in.subs[f]; s != nil {
			s.idleSince = time.Time{}
			continue
		}
		if at, refused := in.retry[f]; refused && now.Before(at) {
			next = min(next, at.Sub(now))
			continue
		}
		if add == "" {
			add = f
		}
	}
	if add != "" {
		return add, "", 0
	}
	for f, s := range in.subs {
		if slices.Contains(target, f) {
			continue
		}
		covered := false
		for _, t := range target {
			if in.subs[t] != nil && topics.Covers(t, f) {
				covered = true
				break
			}
		}
		switch {
		case covered:
			return "", f, 0 // the covering subscription brings its messages
		case s.idleSince.IsZero():
			s.idleSince = now
			next = min(next, in.linger)
		case now.Sub(s.idleSince) >= in.linger:
			return "", f, 0
		default:
			next = min(next, in.linger-now.Sub(s.idleSince))
		}
	}
	return "", "", max(next, time.Millisecond)
}

// minimalCover returns the filters of wanted that no other one covers,
// sorted; of two filters that cover each other, the smaller stays.
func minimalCover(wanted []string) []string {
	var out []string
	for _, f := range wanted {
		needed := true
		for _, g := range wanted {
			if g != f && topics.Covers(g, f) && (!topics.Covers(f, g) || g < f) {
				needed = false
				break
			}
		}
		if needed {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subscribeBus subscribes the hub to filter on the Bus.
func (h *Hub) subscribeBus(filter string) {
	cancel, err := h.bus.Subscribe(filter, h.deliver)
	h.mu.Lock()
	if err == nil && h.closed { // meanwhile
		h.mu.Unlock()
		cancel()
		return
	}
	defer h.mu.Unlock()
	if err != nil {
		h.log.Warn("subscription refused by the bus; trying again later", "filter", filter, "retry_in", retryRefused, "err", err)
		h.interest.retry[filter] = time.Now().Add(retryRefused)
		return
	}
	delete(h.interest.retry, filter)
	h.interest.subs[filter] = &busSub{cancel: cancel, activeFrom: h.seq}
	close(h.interest.changed)
	h.interest.changed = make(chan struct{})
	h.log.Debug("subscribed on the bus", "filter", filter)
}

// unsubscribeBus cancels the hub's subscription to filter, and forgets the
// last values of the topics no other subscription brings any more: they
// would go stale unnoticed.
func (h *Hub) unsubscribeBus(filter string) {
	h.mu.Lock()
	s := h.interest.subs[filter]
	delete(h.interest.subs, filter)
	remaining := make([]string, 0, len(h.interest.subs))
	for f := range h.interest.subs {
		remaining = append(remaining, f)
	}
	h.state.forget(func(topic string) bool {
		return topics.Match(filter, topic) && !matchAny(remaining, topic)
	})
	h.mu.Unlock()
	s.cancel()
	h.log.Debug("unsubscribed on the bus", "filter", filter)
}

// stopInterest stops the reconciler and cancels every Bus subscription. A
// reconciler waiting for the broker past ctx is left to end on its own
// (when the Bus is closed, at the latest); its subscription is then not
// cancelled, which a closing Bus does not need.
func (h *Hub) stopInterest(ctx context.Context) {
	if h.interest.onDemand {
		close(h.interest.quit)
		select {
		case <-h.interest.done:
		case <-ctx.Done():
			h.log.Warn("a subscription on the bus still waits for the broker")
		}
	}
	h.mu.Lock()
	subs := h.interest.subs
	h.interest.subs = make(map[string]*busSub)
	h.mu.Unlock()
	for _, s := range subs {
		s.cancel()
	}
}

// BusFilters returns the filters the hub is subscribed to on the Bus now,
// sorted.
func (h *Hub) BusFilters() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	fs := make([]string, 0, len(h.interest.subs))
	for f := range h.interest.subs {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return fs
}

// Resync tells every session that messages may have been lost on the way
// to the hub (the connection to a remote broker dropped and came back): each
// gets a resync with the last values, then goes on live; and no client may
// resume from an event before now. reason is what the clients are told.
func (h *Hub) Resync(reason string) {
	h.mu.Lock()
	h.resumeFloor = h.seq
	for _, s := range h.interest.subs {
		s.activeFrom = max(s.activeFrom, h.seq)
	}
	clients := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		if c.started {
			clients = append(clients, c)
		}
	}
	h.mu.Unlock()
	for _, c := range clients {
		h.restartWithResync(c, reason)
	}
	if len(clients) > 0 {
		h.log.Info("sessions told to resync", "sessions", len(clients), "reason", reason)
	}
}

// notFollowedReason is why a client resuming on filters that the hub did
// not follow all along resyncs.
func notFollowedReason(filters []string) string {
	return "this hub was not following " + strings.Join(filters, ", ") + " since that event"
}
