package auth

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// The defaults of [ThrottleConfig].
const (
	DefaultFailuresPerUser    = 10
	DefaultFailuresPerAddress = 100
	DefaultThrottleWindow     = time.Minute
)

// ThrottleConfig sets the limits of a [Throttle]. The zero value of each
// field means its documented default.
type ThrottleConfig struct {
	// PerUser is how many failures one user name may have from one address
	// within Window before that name must wait there. Default 10.
	PerUser int
	// PerAddress is how many failures one address may have within Window,
	// whatever the names, before every name must wait there: a guesser who
	// tries many names gets no more than this. Default 100.
	PerAddress int
	// Window is the time failures are counted over, from the first one.
	// Default 1 minute.
	Window time.Duration
}

// Throttle slows down password guessing. It counts attempts by pair of
// address and user name, and by address over all names: a pair that has
// failed PerUser times within Window, or an address that has failed
// PerAddress times, is refused until the window has passed since its first
// failure. So a guesser who locks one name out does not lock out another
// user behind the same address, yet cannot try more than PerAddress
// passwords a window by varying the name. An IPv6 address counts as its /64
// (what one host or home network gets). Create it with [NewThrottle].
//
// An attempt counts as a failure from the moment it is let through
// ([Throttle.Attempt]) until it succeeds ([Throttle.Succeed]): guesses made
// in parallel cannot all pass the check before any of them has failed.
//
// The state is bounded: each of its two maps (pairs, addresses) holds at
// most maxThrottled (65,536) entries, each a 64-bit hash and a count with a
// time: about 6 MiB a map when full. Keys are hashed, so a long user name
// costs no more than a short one. A full map forgets what is older than the
// window, then a sixteenth of its entries at random: never all at once.
type Throttle struct {
	cfg  ThrottleConfig
	now  func() time.Time
	seed maphash.Seed

	mu    sync.Mutex
	pairs map[uint64]failures // by hash of (address, name)
	addrs map[uint64]failures // by hash of address (an IPv6 one's /64)
}

type failures struct {
	count int
	since time.Time
}

// maxThrottled bounds the pairs, and separately the addresses, a Throttle
// remembers.
const maxThrottled = 65536

// NewThrottle returns a throttle with the limits of cfg.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.PerUser <= 0 {
		cfg.PerUser = DefaultFailuresPerUser
	}
	if cfg.PerAddress <= 0 {
		cfg.PerAddress = DefaultFailuresPerAddress
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultThrottleWindow
	}
	return &Throttle{cfg: cfg, now: time.Now, seed: maphash.MakeSeed(),
		pairs: make(map[uint64]failures), addrs: make(map[uint64]failures)}
}

// pair is what a pair's key hashes: a struct, so that no choice of address
// and name can collide with another by concatenation.
type pair struct{ addr, user string }

func (t *Throttle) keys(addr, user string) (pairKey, addrKey uint64) {
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is6() && !ip.Is4In6() {
		addr = netip.PrefixFrom(ip, 64).Masked().Addr().String()
	}
	return maphash.Comparable(t.seed, pair{addr, user}), maphash.String(t.seed, addr)
}

// Attempt reports whether user may try to authenticate from addr now, and
// if not, how long until it may. An attempt let through counts as a failure
// until Succeed says otherwise.
func (t *Throttle) Attempt(addr, user string) (ok bool, retryAfter time.Duration) {
	pk, ak := t.keys(addr, user)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if wait := t.waitLocked(pk, ak, now); wait > 0 {
		return false, wait
	}
	t.failLocked(t.pairs, pk, now)
	t.failLocked(t.addrs, ak, now)
	return true, 0
}

// wait is how long user must wait before an attempt from addr, without
// counting one.
func (t *Throttle) wait(addr, user string) time.Duration {
	pk, ak := t.keys(addr, user)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waitLocked(pk, ak, t.now())
}

// waitLocked is the longer of the pair's and the address's waits.
func (t *Throttle) waitLocked(pk, ak uint64, now time.Time) time.Duration {
	return max(t.entryWaitLocked(t.pairs, pk, t.cfg.PerUser, now), t.entryWaitLocked(t.addrs, ak, t.cfg.PerAddress, now))
}

// entryWaitLocked is how long the entry k of m must wait, past limit
// failures; it forgets the entry once its window has passed.
func (t *Throttle) entryWaitLocked(m map[uint64]failures, k uint64, limit int, now time.Time) time.Duration {
	f, ok := m[k]
	if !ok {
		return 0
	}
	wait := t.cfg.Window - now.Sub(f.since)
	if wait <= 0 {
		delete(m, k)
		return 0
	}
	if f.count < limit {
		return 0
	}
	return wait
}

func (t *Throttle) failLocked(m map[uint64]failures, k uint64, now time.Time) {
	f, ok := m[k]
	if !ok || now.Sub(f.since) >= t.cfg.Window {
		if !ok && len(m) >= maxThrottled {
			t.makeRoomLocked(m, now)
		}
		f = failures{since: now}
	}
	f.count++
	m[k] = f
}

// Succeed says the last attempt of user from addr succeeded: the pair's
// failures are forgotten, and the address gets that attempt back, but keeps
// its failures, so that a guesser who owns one account cannot reset the
// ceiling between guesses at others.
func (t *Throttle) Succeed(addr, user string) {
	pk, ak := t.keys(addr, user)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pairs, pk)
	if f, ok := t.addrs[ak]; ok {
		if f.count--; f.count <= 0 {
			delete(t.addrs, ak)
		} else {
			t.addrs[ak] = f
		}
	}
}

// makeRoomLocked makes room in a full m: it forgets what is older than the
// window and, under a flood of fresh keys, a sixteenth of the entries at
// random, so that the next sweep is as many inserts away. Clearing the map
// instead would let a flood wipe the count of the name under attack at will;
// at random, it takes a flood of about maxThrottled fresh keys.
func (t *Throttle) makeRoomLocked(m map[uint64]failures, now time.Time) {
	for k, f := range m {
		if now.Sub(f.since) >= t.cfg.Window {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) <= maxThrottled-maxThrottled/16 {
			break
		}
		delete(m, k)
	}
}
