package bridge

import (
	"bufio"
	"log/slog"
	"sync"
)

// idleReaders parks the readers of idle WebSocket sessions: a session
// waiting for its client to send something holds no goroutine, only its
// place in an epoll set (epoll_linux.go) that one goroutine of the hub's
// waits on. When the client sends something, or hangs up, or the session
// must end, the session's reader starts again on a goroutine of its own
// (wsSession.resume), reads what there is and parks again once it has read
// everything (its read buffer empty: what epoll cannot see).
//
// A parked session is in parked, under its token, and in the epoll set:
// both are changed together under mu, so whoever takes a session out of
// parked (the waiter, for input; wake, for an end) is the one that resumes
// it, once. A session that cannot park (TLS: no descriptor; not Linux;
// epoll failed) keeps its reader's goroutine, waiting at a shallow stack.
type idleReaders struct {
	log *slog.Logger

	mu     sync.Mutex
	poll   *epoller // made on the first park; nil before, and when unavailable
	failed bool     // epoll is unavailable, or failed: nothing parks any more
	closed bool
	// parked holds each parked session under its token; bound: one entry
	// per attached session (Config.MaxSessions), as a session is parked
	// only between its attach and its end.
	parked map[uint64]*wsSession
	next   uint64        // the last token given
	done   chan struct{} // closed when the waiter returns; made with poll
}

func newIdleReaders(log *slog.Logger) *idleReaders {
	return &idleReaders{log: log, parked: make(map[uint64]*wsSession)}
}

// park parks s's reader, which returns at once; false: s's reader goes
// on waiting on its goroutine. Call it from the reader, with its read
// buffer empty, which a parked session does not keep; it refuses a session
// that is ending, which wake may have been told of already.
func (r *idleReaders) park(s *wsSession) bool {
	if s.net.raw == nil || s.br == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.failed || s.c.stopped() {
		return false
	}
	if r.poll == nil && !r.startLocked() {
		return false
	}
	// The read buffer is empty: a parked session lets it go (resume
	// makes another). Before the add, after which s may resume at once.
	held := *s.br
	*s.br = bufio.Reader{}
	r.next++
	if err := r.poll.add(s.net.raw, r.next); err != nil {
		*s.br = held
		return false // closed meanwhile: the reader sees it
	}
	s.parkToken = r.next
	r.parked[r.next] = s
	return true
}

// startLocked makes the epoll set and starts its waiter.
func (r *idleReaders) startLocked() bool {
	poll, err := newEpoller()
	if err != nil {
		r.failed = true
		r.log.Info("idle WebSocket sessions keep a goroutine each", "err", err)
		return false
	}
	r.poll, r.done = poll, make(chan struct{})
	go r.wait() // until close
	return true
}

// wake resumes s's reader if it is parked: the session is ending (its
// stop is closed, its connection has a read deadline or is closed), which
// the reader must see. It never blocks.
func (r *idleReaders) wake(s *wsSession) {
	r.mu.Lock()
	resumed := r.takeLocked(s.parkToken) == s
	r.mu.Unlock()
	if resumed {
		go s.resume()
	}
}

// takeLocked takes the session parked under token out of the epoll set
// and of parked, and returns it; nil: none is (any more).
func (r *idleReaders) takeLocked(token uint64) *wsSession {
	s, ok := r.parked[token]
	if !ok {
		return nil
	}
	delete(r.parked, token)
	s.parkToken = 0
	r.poll.remove(s.net.raw)
	return s
}

// wait resumes the sessions whose sockets epoll reports, until close.
// Should epoll fail, it resumes every parked session and parks no more.
func (r *idleReaders) wait() {
	defer close(r.done)
	events := make([]epollEvent, 128)
	var tokens []uint64
	var resume []*wsSession
	for {
		var woken bool
		var err error
		tokens, woken, err = r.poll.wait(events, tokens[:0])
		r.mu.Lock()
		if err != nil {
			r.failed = true
			r.log.Error("idle WebSocket sessions keep a goroutine each from now on", "err", err)
			for t := range r.parked {
				tokens = append(tokens, t)
			}
		}
		for _, t := range tokens {
			if s := r.takeLocked(t); s != nil {
				resume = append(resume, s)
			}
		}
		stop := woken && r.closed || err != nil
		r.mu.Unlock()
		for i, s := range resume {
			go s.resume()
			resume[i] = nil
		}
		resume = resume[:0]
		if stop {
			return
		}
	}
}

// close stops the waiter, once every session has ended (Hub.Close); a
// session still parked is resumed, so that it ends too.
func (r *idleReaders) close() {
	r.mu.Lock()
	r.closed = true
	poll := r.poll
	var left []*wsSession
	for t := range r.parked {
		left = append(left, r.takeLocked(t))
	}
	r.mu.Unlock()
	for _, s := range left {
		go s.resume()
	}
	if poll == nil {
		return
	}
	poll.wake()
	<-r.done
	poll.close()
}

// parkedCount is how many sessions are parked.
func (r *idleReaders) parkedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.parked)
}
