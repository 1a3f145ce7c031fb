package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/linger"
	"github.com/motehub/motehub/internal/refusals"
)

// conns tracks a listener's open connections: to count them per address
// (the limits), to give every write a deadline (hurried when the broker
// closes), to close those that send no CONNECT in time, and to cut them all
// at once.
type conns struct {
	connLimits
	closing atomic.Int64 // unix nanos: once set, writes must end by then
	wg      sync.WaitGroup

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	perIP  map[string]int
	closed bool
}

// connLimits are the time limits of a listener's connections.
type connLimits struct {
	writeTimeout     time.Duration // of every write
	connectTimeout   time.Duration // from accept to CONNECT
	onConnectTimeout func()        // counts a connection closed for it
}

// lingerTimeout bounds how long a closed connection's unread input is
// drained, so that the client gets what was written last (a DISCONNECT or a
// refused CONNACK) instead of a reset that loses it.
const lingerTimeout = time.Second

// lingerBytes bounds what a lingering close reads and discards.
const lingerBytes = 1 << 20

func newConns(limits connLimits) conns {
	return conns{connLimits: limits, open: make(map[net.Conn]struct{}), perIP: make(map[string]int)}
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
	s.perIP[httpx.Host(c.RemoteAddr().String())]++
	s.wg.Add(1)
	return true
}

// untrack removes c once it has been closed (see lingeringConn).
func (s *conns) untrack(c lingeringConn) {
	c.linger()
	s.mu.Lock()
	delete(s.open, c)
	ip := httpx.Host(c.RemoteAddr().String())
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// ended reports whether err, which ended a connection, is its CONNECT not
// arriving in time; it counts such connections.
func (s *conns) ended(c interface{ sawConnect() bool }, err error) bool {
	var timeout net.Error // gorilla's read errors are net.Errors, not os.ErrDeadlineExceeded
	if c.sawConnect() || !errors.As(err, &timeout) || !timeout.Timeout() {
		return false
	}
	if s.onConnectTimeout != nil {
		s.onConnectTimeout()
	}
	return true
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

// closeOpen closes every open connection at once, without lingering.
func (s *conns) closeOpen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		c.(lingeringConn).abort()
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

	refusals *refusals.Log // told of the CONNECTs mochi refuses itself

	gate      chan struct{} // closed by admit: until then connections wait in the backlog
	gateOnce  sync.Once
	shutCh    chan struct{} // closed by Close
	shutOnce  sync.Once
	serveDone chan struct{}

	disconnect func(listenerID string) // tells its clients the server is going away
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id string, ln net.Listener, limits connLimits, refused *refusals.Log, disconnect func(string)) *tcpListener {
	return &tcpListener{
		conns:      newConns(limits),
		id:         id,
		ln:         ln,
		refusals:   refused,
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
		// mochi moves the deadline to the client's keep alive once CONNECT is read.
		_ = conn.SetReadDeadline(time.Now().Add(l.connectTimeout))
		go l.serveConn(dc, establish)
	}
}

// serveConn is the goroutine of one connection: mochi reads its packets on
// it. An idle client's goroutine waits here, below mochi's reader: the
// frame is kept small (the logging is in connEnded) so that the runtime
// can shrink the stack to its smallest.
func (l *tcpListener) serveConn(dc *deadlineConn, establish listeners.EstablishFn) {
	defer l.untrack(dc)
	l.connEnded(dc, establish(l.id, dc))
}

// connEnded logs why a connection ended.
//
//go:noinline
func (l *tcpListener) connEnded(dc *deadlineConn, err error) {
	switch {
	case l.ended(dc, err):
		l.log.Debug("mqtt connection closed: no CONNECT in time", "remote", dc.RemoteAddr().String(), "timeout", l.connectTimeout)
	case err != nil:
		reportRefusal(l.refusals, l.id, dc.RemoteAddr(), err)
		l.log.Debug("mqtt client ended", "remote", dc.RemoteAddr().String(), "err", err)
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

// lingeringConn is a connection a listener tracks. Its Close, which mochi
// calls, only ends the writing side (so that what was written last reaches
// the client) and stops mochi's reads; the listener's goroutine then
// lingers, draining the client's unread input for a moment, and closes it
// for good. abort closes it at once.
type lingeringConn interface {
	net.Conn
	linger()
	abort()
}

// connState is what a listener's connection knows of its life.
type connState struct {
	connectedAt atomic.Int64 // unix nanos when CONNECT was read (in time); 0 before
	closed      atomic.Bool  // Close was called: mochi reads nothing more
	closeOnce   sync.Once
}

func (s *connState) connectRead()     { s.connectedAt.Store(time.Now().UnixNano()) }
func (s *connState) sawConnect() bool { return s.connectedAt.Load() != 0 }

// connectedSince is when CONNECT was read (zero before).
func (s *connState) connectedSince() time.Time {
	if at := s.connectedAt.Load(); at != 0 {
		return time.Unix(0, at)
	}
	return time.Time{}
}

// deadlineConn is a TCP (or TLS) connection of an MQTT client: every write
// has a deadline, and it closes as lingeringConn says.
type deadlineConn struct {
	net.Conn
	connState
	set *conns
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

// SyscallConn is the TCP connection's, so that mochi's reader can wait
// for the next packet without holding a buffer (PATCHES.md 35); a TLS
// connection has none, and is read through Read. Its reads end once the
// connection is closed, as Read's do.
func (c *deadlineConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errNoRawConn
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return closableRawConn{RawConn: raw, closed: &c.closed}, nil
}

// closableRawConn is a connection's RawConn whose reads end once Close was
// called (closed), as deadlineConn.Read's do. Close's read deadline alone
// does not stop mochi's reader: its lazy refresh (refreshDeadlineLazily)
// may move the deadline on just after a Stop closed the connection, and
// the reader would then wait for, and act on, what the client sends next.
type closableRawConn struct {
	syscall.RawConn
	closed *atomic.Bool
}

func (r closableRawConn) Read(f func(fd uintptr) (done bool)) error {
	if r.closed.Load() {
		return net.ErrClosed
	}
	return r.RawConn.Read(f)
}

// errNoRawConn: the connection is not a socket of its own (TLS).
var errNoRawConn = errors.New("no raw connection")

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(c.set.writeDeadline()); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		_ = c.Close() // a packet cut short leaves the stream unusable
	}
	return n, err
}

// Close ends the writing side and mochi's reads; see lingeringConn.
func (c *deadlineConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		linger.CloseWrite(c.Conn)              // FIN after what is written (TLS: after close_notify)
		_ = c.Conn.SetReadDeadline(time.Now()) // mochi's reader returns now
	})
	return nil
}

func (c *deadlineConn) linger() {
	_ = c.Close()
	linger.Drain(c.Conn, time.Now().Add(lingerTimeout), lingerBytes) // until the client closes too, or the deadline
	_ = c.Conn.Close()
}

func (c *deadlineConn) abort() {
	c.closed.Store(true)
	_ = c.Conn.Close()
}
