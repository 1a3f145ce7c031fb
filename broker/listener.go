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

// tcpListener is a mochi listener over a socket we bound ourselves (so the
// real address is known before mochi starts). Unlike mochi's own it closes
// the socket before disconnecting clients, waits for its goroutines, puts a
// deadline on every write, and can cut every connection at once.
type tcpListener struct {
	id           string
	ln           net.Listener
	writeTimeout time.Duration
	log          *slog.Logger

	closing   atomic.Int64  // unix nanos: once set, writes must end by then
	gate      chan struct{} // closed by admit: until then connections wait in the backlog
	shut      chan struct{} // closed by Close
	gateOnce  sync.Once
	serveDone chan struct{}
	conns     sync.WaitGroup

	mu     sync.Mutex
	open   map[*deadlineConn]struct{}
	perIP  map[string]int
	closed bool
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id string, ln net.Listener, writeTimeout time.Duration) *tcpListener {
	return &tcpListener{
		id:           id,
		ln:           ln,
		writeTimeout: writeTimeout,
		gate:         make(chan struct{}),
		shut:         make(chan struct{}),
		serveDone:    make(chan struct{}),
		open:         make(map[*deadlineConn]struct{}),
		perIP:        make(map[string]int),
	}
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Address() string  { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until the socket is closed, handing each to
// establish on a goroutine of its own.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	defer close(l.serveDone)
	select {
	case <-l.gate:
	case <-l.shut:
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
		dc := &deadlineConn{Conn: conn, l: l}
		if !l.track(dc) {
			_ = conn.Close()
			continue
		}
		go func() {
			defer l.conns.Done()
			defer l.untrack(dc)
			if err := establish(l.id, dc); err != nil {
				l.log.Debug("mqtt client ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func (l *tcpListener) track(c *deadlineConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.open[c] = struct{}{}
	l.perIP[hostOf(c.RemoteAddr().String())]++
	l.conns.Add(1)
	return true
}

func (l *tcpListener) untrack(c *deadlineConn) {
	l.mu.Lock()
	delete(l.open, c)
	ip := hostOf(c.RemoteAddr().String())
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
	l.mu.Unlock()
	_ = c.Close()
}

// count returns how many connections are open, in total and from ip.
func (l *tcpListener) count(ip string) (total, fromIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open), l.perIP[ip]
}

// hostOf is the IP address of a host:port.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// Close stops accepting, asks mochi to disconnect this listener's clients,
// then closes what is left: connections that never sent CONNECT, which mochi
// does not know and would otherwise wait for.
func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if !l.closed {
		close(l.shut)
	}
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	<-l.serveDone
	closeClients(l.id)
	l.closeOpen()
}

func (l *tcpListener) closeOpen() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.open {
		_ = c.Conn.Close()
	}
}

// admit starts accepting connections.
func (l *tcpListener) admit() { l.gateOnce.Do(func() { close(l.gate) }) }

// hurry makes every write, now and from now on, end by deadline.
func (l *tcpListener) hurry(deadline time.Time) {
	l.closing.Store(deadline.UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.open {
		_ = c.SetWriteDeadline(deadline)
	}
}

// cut closes every connection and waits for their goroutines.
func (l *tcpListener) cut() {
	l.closeOpen()
	l.conns.Wait()
}

// deadlineConn sets a write deadline before every write.
type deadlineConn struct {
	net.Conn
	l *tcpListener
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	deadline := time.Now().Add(c.l.writeTimeout)
	if closing := c.l.closing.Load(); closing != 0 {
		deadline = time.Unix(0, closing)
	}
	if err := c.Conn.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
