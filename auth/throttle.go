package auth

import (
	"sync"
	"time"
)

// Throttle slows down password guessing: an address that has failed to
// authenticate Limit times within Window is refused until the window has
// passed since its first failure. The zero value is not usable; see NewThrottle.
type Throttle struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	fails map[string]*failures
}

type failures struct {
	count int
	since time.Time
}

// maxThrottled bounds the addresses a Throttle remembers.
const maxThrottled = 65536

// NewThrottle allows limit failures per window per address.
func NewThrottle(limit int, window time.Duration) *Throttle {
	return &Throttle{limit: limit, window: window, now: time.Now, fails: make(map[string]*failures)}
}

// Allow reports whether addr may try to authenticate now, and if not, how
// long until it may.
func (t *Throttle) Allow(addr string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.fails[addr]
	if f == nil {
		return true, 0
	}
	if wait := t.window - t.now().Sub(f.since); wait <= 0 {
		delete(t.fails, addr)
		return true, 0
	} else if f.count >= t.limit {
		return false, wait
	}
	return true, 0
}

// Fail records a failed attempt from addr.
func (t *Throttle) Fail(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.fails[addr]
	if f == nil || now.Sub(f.since) >= t.window {
		if len(t.fails) >= maxThrottled {
			t.forgetOldLocked(now)
		}
		f = &failures{since: now}
		t.fails[addr] = f
	}
	f.count++
}

// Succeed forgets addr's failures.
func (t *Throttle) Succeed(addr string) {
	t.mu.Lock()
	delete(t.fails, addr)
	t.mu.Unlock()
}

func (t *Throttle) forgetOldLocked(now time.Time) {
	for addr, f := range t.fails {
		if now.Sub(f.since) >= t.window {
			delete(t.fails, addr)
		}
	}
	if len(t.fails) >= maxThrottled {
		clear(t.fails) // under a flood from many addresses: start over rather than grow
	}
}
