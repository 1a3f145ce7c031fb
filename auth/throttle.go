package auth

import (
	"hash/maphash"
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

// Throttle slows down password guessing. It counts failures by pair of
// address and user name, and by address over all names: a pair that has
// failed PerUser times within Window, or an address that has failed
// PerAddress times, is refused until the window has passed since its first
// failure. So a guesser who locks one name out does not lock out another
// user behind the same address, yet cannot try more than PerAddress
// passwords a window by varying the name. Create it with [NewThrottle].
//
// The state is bounded: each of its two maps (pairs, addresses) holds at
// most maxThrottled (65,536) entries, each a 64-bit hash and a count with a
// time: about 6 MiB a map when full. Keys are hashed, so a long user name
// costs no more than a short one.
type Throttle struct {
	cfg  ThrottleConfig
	now  func() time.Time
	seed maphash.Seed

	mu    sync.Mutex
	pairs map[uint64]failures // by hash of (address, name)
	addrs map[uint64]failures // by hash of address
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
	return maphash.Comparable(t.seed, pair{addr, user}), maphash.String(t.seed, addr)
}

// Allow reports whether user may try to authenticate from addr now, and if
// not, how long until it may.
func (t *Throttle) Allow(addr, user string) (ok bool, retryAfter time.Duration) {
	pk, ak := t.keys(addr, user)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	wait := max(t.waitLocked(t.pairs, pk, t.cfg.PerUser, now), t.waitLocked(t.addrs, ak, t.cfg.PerAddress, now))
	return wait <= 0, wait
}

// waitLocked is how long the entry k of m must wait, past limit failures;
// it forgets the entry once its window has passed.
func (t *Throttle) waitLocked(m map[uint64]failures, k uint64, limit int, now time.Time) time.Duration {
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

// Fail records a failed attempt of user from addr.
func (t *Throttle) Fail(addr, user string) {
	pk, ak := t.keys(addr, user)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.failLocked(t.pairs, pk, now)
	t.failLocked(t.addrs, ak, now)
}

func (t *Throttle) failLocked(m map[uint64]failures, k uint64, now time.Time) {
	f, ok := m[k]
	if !ok || now.Sub(f.since) >= t.cfg.Window {
		if !ok && len(m) >= maxThrottled {
			t.forgetOldLocked(m, now)
		}
		f = failures{since: now}
	}
	f.count++
	m[k] = f
}

// Succeed forgets the failures of user from addr, and only those: the
// address's count stays, so that a guesser who owns one account cannot
// reset the ceiling between guesses at others.
func (t *Throttle) Succeed(addr, user string) {
	pk, _ := t.keys(addr, user)
	t.mu.Lock()
	delete(t.pairs, pk)
	t.mu.Unlock()
}

func (t *Throttle) forgetOldLocked(m map[uint64]failures, now time.Time) {
	for k, f := range m {
		if now.Sub(f.since) >= t.cfg.Window {
			delete(m, k)
		}
	}
	if len(m) >= maxThrottled {
		// A flood of fresh keys: start over rather than grow. Filling the
		// pairs takes maxThrottled/PerAddress addresses within a window, all
		// then at their ceiling, which the addresses' map still holds; filling
		// that one takes maxThrottled addresses, who guess that fast anyway.
		clear(m)
	}
}
