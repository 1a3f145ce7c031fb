package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// conns tracks a listener's open connections: to count them per address
// (the limits), to give every write a deadline (hurried when the broker
// closes), and to cut them all at once.
type conns struct {
	writeTimeout time.Duration
	closing      atomic.Int64 // unix nanos: once set, writes must end by then
	wg           sync.WaitGroup

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	perIP  map[string]int
	closed bool
}

func newConns(writeTimeout time.Duration) conns {
	return conns{writeTimeout: writeTimeout, open: make(map[net.Conn]struct{}), perIP: make(map[string]int)}
}

// writeDeadline is when a write starting now must end.
func (s *conns) writeDeadline() time.Time {
	if closing := s.closing.Load(); closing != 0 {
		return time.Unix(0, closing)
	}
	return time.Now().Add(s.writeTimeout)
}

// track adds c, unless the listener is closed; the caller then owes untrack.
func (s *conns) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = struct{}{}
	s.perIP[hostOf(c.RemoteAddr().String())]++
	s.wg.Add(1)
	return true
}

// untrack removes c and closes it.
func (s *conns) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.open, c)
	ip := hostOf(c.RemoteAddr().String())
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.mu.Unlock()
	_ = c.Close()
	s.wg.Done()
}

// count returns how many connections are open, in total and from ip.
func (s *conns) count(ip string) (total, fromIP int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open), s.perIP[ip]
}

// shut refuses new connections from now on.
func (s *conns) shut() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// hurry makes every write, now and from now on, end by deadline.
func (s *conns) hurry(deadline time.Time) {
	s.closing.Store(deadline.UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		_ = c.SetWriteDeadline(deadline)
	}
}

// closeOpen closes every open connection.
func (s *conns) closeOpen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		_ = c.Close()
	}
}

// cut closes every connection and waits until they are untracked.
func (s *conns) cut() {
	s.closeOpen()
	s.wg.Wait()
}

// tcpListener is a mochi listener over a socket we bound ourselves (so the
// real address is known before mochi starts). Unlike mochi's own it holds
// connections in the backlog until admitted, closes the socket before
// disconnecting clients, waits for its goroutines, and puts a deadline on
// every write.
type tcpListener struct {
	conns
	id  string
	ln  net.Listener
	log *slog.Logger

	gate      chan struct{} // closed by admit: until then connections wait in the backlog
	gateOnce  sync.Once
	shutCh    chan struct{} // closed by Close
	shutOnce  sync.Once
	serveDone chan struct{}

	disconnect func(listenerID string) // tells its clients the server is going away
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id string, ln net.Listener, writeTimeout time.Duration, disconnect func(string)) *tcpListener {
	return &tcpListener{
		conns:      newConns(writeTimeout),
		id:         id,
		ln:         ln,
		disconnect: disconnect,
		gate:       make(chan struct{}),
		shutCh:     make(chan struct{}),
		serveDone:  make(chan struct{}),
	}
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Address() string  { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections, once admitted, until the socket is closed,
// handing each to establish on a goroutine of its own.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	defer close(l.serveDone)
	select {
	case <-l.gate:
	case <-l.shutCh:
		return
	}
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and try again, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("mqtt accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		dc := &deadlineConn{Conn: conn, set: &l.conns}
		if !l.track(dc) {
			_ = conn.Close()
			continue
		}
		go func() {
			defer l.untrack(dc)
			if err := establish(l.id, dc); err != nil {
				l.log.Debug("mqtt client ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// admit starts accepting connections.
func (l *tcpListener) admit() { l.gateOnce.Do(func() { close(l.gate) }) }

// Close stops accepting, tells the clients the server is going away (with
// Embedded.disconnectListener, not mochi's CloseFn: see there), closes what
// is left (connections that never sent CONNECT, which mochi does not know),
// and waits until every connection's goroutine has returned: mochi's
// CloseAll waits on a WaitGroup that those goroutines add to, and an Add
// racing that Wait panics.
func (l *tcpListener) Close(listeners.CloseFn) {
	l.shut()
	l.shutOnce.Do(func() { close(l.shutCh) })
	_ = l.ln.Close()
	<-l.serveDone
	l.disconnect(l.id)
	l.cut()
}

// deadlineConn sets a write deadline before every write.
type deadlineConn struct {
	net.Conn
	set *conns
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(c.set.writeDeadline()); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// hostOf is the IP address of a host:port.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
