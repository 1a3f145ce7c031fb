package motesim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Short intervals, so that the tests see many messages in little time.
const (
	fast      = 20 * time.Millisecond
	reconnect = 50 * time.Millisecond
	// stopBound is how long Run may take to return after its context ends:
	// usually milliseconds, at most writeTimeout when a publish raced the
	// loss of the connection.
	stopBound = writeTimeout + goodbyeTimeout + time.Second
)

// fastConfig is a Config for tests of the motes, without the devices of
// other conventions, against the broker at addr (host:port).
func fastConfig(addr string, motes int, log *slog.Logger) Config {
	return Config{
		Broker:               "tcp://" + addr,
		Motes:                motes,
		NoDevices:            true,
		ASNInterval:          fast,
		TemperatureInterval:  fast,
		PIRInterval:          fast,
		MaxReconnectInterval: reconnect,
		Seed:                 42,
		Logger:               log,
	}
}

// startBroker starts an embedded broker on addr ("127.0.0.1:0" for any port)
// and closes it when the test ends. Right after another broker on the same
// address closed, the port may be busy for a moment: Start is retried.
func startBroker(t *testing.T, addr string) *broker.Embedded {
	t.Helper()
	var b *broker.Embedded
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		var err error
		b, err = broker.Start(broker.Config{Addr: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil && !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("start broker on %s: %v", addr, err)
		}
		if err == nil {
			b.Open()
		}
		return err == nil
	}, "broker could not bind %s", addr)
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

// startBrokerWithUsers starts an embedded broker on any loopback port that
// admits only the users of usersTOML (auth's users file), closes it when the
// test ends, and returns its address.
func startBrokerWithUsers(t *testing.T, usersTOML string) string {
	t.Helper()
	users, err := auth.Parse([]byte(usersTOML))
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Authorizer: auth.New(users), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b.Open()
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b.Addr().String()
}

// motes is a Run in the background.
type motes struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	took   time.Duration
}

// startMotes runs cfg until stop is called or the test ends.
func startMotes(t *testing.T, cfg Config) *motes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &motes{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run's context and returns how long Run took to return,
// failing the test when it took more than stopBound or returned an error.
func (r *motes) stop(t *testing.T) time.Duration {
	t.Helper()
	r.once.Do(func() {
		start := time.Now()
		r.cancel()
		select {
		case err := <-r.done:
			r.took = time.Since(start)
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(stopBound + hubtest.Timeout):
			t.Fatalf("Run has not returned %v after its context ended", stopBound+hubtest.Timeout)
		}
		if r.took > stopBound {
			t.Errorf("Run took %v to return after its context ended, want at most %v", r.took, stopBound)
		}
	})
	return r.took
}

// connectOrdered is hubtest.ConnectMQTT with messages delivered in the order
// they arrive: these tests compare consecutive readings. It is safe because
// hubtest.SubscribeMQTT's handler never blocks.
func connectOrdered(t *testing.T, addr, clientID string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetOrderMatters(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		c.Disconnect(0)
		t.Fatalf("MQTT connect to %s as %q: %v", addr, clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// receiveUntil passes the messages from ch to see until see returns true,
// failing the test when that takes longer than timeout.
func receiveUntil(t *testing.T, ch <-chan hubtest.Message, timeout time.Duration, what string, see func(hubtest.Message) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m := <-ch:
			if see(m) {
				return
			}
		case <-deadline.C:
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
	}
}

// logs records what Run logs, and copies it to the test's output.
type logs struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// newLogs returns a debug-level logger that records into the returned logs.
func newLogs(t *testing.T) (*slog.Logger, *logs) {
	l := &logs{}
	text := slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(&logHandler{logs: l, text: text}), l
}

// count is how many records have level, msg, and the given attributes
// (key, value, key, value, …).
func (l *logs) count(level slog.Level, msg string, kv ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, r := range l.records {
		if r.level != level || r.msg != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if r.attrs[kv[i]] != kv[i+1] {
				continue next
			}
		}
		n++
	}
	return n
}

// levels are the levels of every record with msg.
func (l *logs) levels(msg string) map[slog.Level]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[slog.Level]int{}
	for _, r := range l.records {
		if r.msg == msg {
			out[r.level]++
		}
	}
	return out
}

type logHandler struct {
	logs  *logs
	attrs []slog.Attr
	text  slog.Handler
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	attrs := map[string]string{}
	for _, a := range h.attrs {
		attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.records = append(h.logs.records, logRecord{level: r.Level, msg: r.Message, attrs: attrs})
	h.logs.mu.Unlock()
	return h.text.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{logs: h.logs, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...), text: h.text.WithAttrs(as)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{logs: h.logs, attrs: h.attrs, text: h.text.WithGroup(name)}
}

// proxy forwards TCP connections to a broker. While shut it closes every new
// connection at once, as a broker that is not up yet looks to a client: the
// reconnect test uses it to decide when the motes may reach the new broker,
// so that its subscriber is in place before they publish boot.
type proxy struct {
	ln     net.Listener
	target string
	shut   atomic.Bool
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.shut.Load() {
			_ = down.Close()
			continue
		}
		p.wg.Go(func() { p.forward(down) })
	}
}

func (p *proxy) forward(down net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		_ = down.Close()
		return
	}
	if !p.track(down, up) {
		return
	}
	var both sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	both.Go(func() { pipe(up, down) })
	pipe(down, up)
	both.Wait()
	p.mu.Lock()
	delete(p.conns, down)
	delete(p.conns, up)
	p.mu.Unlock()
}

// track registers a forwarded pair, or closes it when the proxy is closed.
func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		if p.closed {
			_ = c.Close()
			continue
		}
		p.conns[c] = struct{}{}
	}
	return !p.closed
}

// cut breaks every forwarded connection, as a network that fails does: the
// broker sees the client vanish without DISCONNECT.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// moteTopic is the absolute topic rel of mote n under the default prefix.
func moteTopic(n int, rel string) string { return fmt.Sprintf("nodes/mote-%d/%s", n, rel) }

// moteOf splits a topic under the default prefix into mote name and rest.
func moteOf(topic string) (mote, rel string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "nodes/")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}
