package bridge

import (
	"context"
	"fmt"
	"sync"
)

// sessions is the registry of the hub's sessions: the attached clients,
// the places that handshakes under way reserved, the sessions per client
// address, the limits, and the WaitGroup that Close waits on. Its lock is a
// leaf: held for O(1) work, or O(sessions) to list them, and nothing is
// taken under it. The fan-out lock may be held while taking it (a resync
// lists the sessions where the stream is).
type sessions struct {
	max, maxPerAddr int
	stats           *counters

	mu       sync.Mutex
	clients  map[*client]struct{}
	perAddr  map[string]int // sessions per client address, reserved ones included
	reserved int            // places taken by handshakes under way (see reserve)
	closed   bool           // Close began: no session may open

	wg sync.WaitGroup // one per attached client
}

func newSessions(max, maxPerAddr int, stats *counters) *sessions {
	return &sessions{max: max, maxPerAddr: maxPerAddr, stats: stats,
		clients: make(map[*client]struct{}), perAddr: make(map[string]int)}
}

// attach registers c, not yet for any topic. It fails when the hub is
// closing or a session limit is reached; otherwise the caller must remove c.
func (s *sessions) attach(c *client) error {
	if err := s.reserve(c.addr); err != nil {
		return err
	}
	return s.attachReserved(c)
}

// reserve takes a session's place for addr, counted against the limits,
// while its transport commits to it (a WebSocket handshake), so that
// handshakes under way cannot together pass a limit. The caller then calls
// attachReserved or unreserve, once.
func (s *sessions) reserve(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admitLocked(addr); err != nil {
		return err
	}
	s.perAddr[addr]++
	s.reserved++
	return nil
}

// unreserve gives back a place that reserve took and no session used.
func (s *sessions) unreserve(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved--
	s.releaseAddrLocked(addr)
}

// attachReserved registers c in the place reserve took for c.addr. It fails
// only when the hub is closing (the place is given back); otherwise the
// caller must remove c.
func (s *sessions) attachReserved(c *client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved--
	if s.closed {
		s.releaseAddrLocked(c.addr)
		return errorf(CodeUnavailable, "the hub is shutting down")
	}
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	s.stats.sessionsBy[c.kind].Add(1)
	return nil
}

func (s *sessions) releaseAddrLocked(addr string) {
	if s.perAddr[addr]--; s.perAddr[addr] <= 0 {
		delete(s.perAddr, addr)
	}
}

// admitLocked says whether a session from addr may open now.
func (s *sessions) admitLocked(addr string) error {
	switch {
	case s.closed:
		return errorf(CodeUnavailable, "the hub is shutting down")
	case len(s.clients)+s.reserved >= s.max:
		s.stats.refused.Add(1)
		return errorf(CodeUnavailable, "the hub serves %d sessions, its limit", s.max)
	case s.perAddr[addr] >= s.maxPerAddr:
		s.stats.refused.Add(1)
		return errorf(CodeLimit, "%d sessions from %s, at most %d per address", s.perAddr[addr], addr, s.maxPerAddr)
	}
	return nil
}

// remove ends c's registration, the last step of its session: Close waits
// for it. Call it once, after a successful attach.
func (s *sessions) remove(c *client) {
	s.mu.Lock()
	delete(s.clients, c)
	s.releaseAddrLocked(c.addr)
	s.mu.Unlock()
	s.stats.sessionsBy[c.kind].Add(-1)
	s.stats.closed(c.reason)
	s.wg.Done()
}

// list returns the attached clients.
func (s *sessions) list() []*client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

func (s *sessions) listLocked() []*client {
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	return clients
}

// has reports whether c is attached.
func (s *sessions) has(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.clients[c]
	return ok
}

// close stops taking sessions and returns those attached, which end; first
// is false when an earlier close did this.
func (s *sessions) close() (clients []*client, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	s.closed = true
	return s.listLocked(), true
}

// end tells clients (what close returned: every session, as none opens
// after it) "going away" and returns when every session has ended, or when
// ctx ends, after cutting the connections that were still open.
func (s *sessions) end(ctx context.Context, clients []*client) error {
	for _, c := range clients {
		c.close(ReasonGoingAway)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range clients {
		c.abort()
	}
	<-done // the transports end at once when their connections are cut
	return fmt.Errorf("close the hub: sessions still open after the deadline were cut: %w", ctx.Err())
}
