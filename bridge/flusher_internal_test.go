package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/hubtest"
)

// closesFor is how many sessions ended for reason r.
func closesFor(h *Hub, r CloseReason) uint64 {
	for i, known := range closeReasons {
		if known == r {
			return h.stats.closes[i].Load()
		}
	}
	return 0
}

// dialConfigured opens a gorilla WebSocket to the hub at addr and sends cfg
// (a config/set payload), returning once config/ok arrived.
func dialConfigured(t *testing.T, addr, cfg string) *hubtest.WS {
	t.Helper()
	ws := hubtest.DialWS(t, "ws://"+addr+"/ws", nil)
	ws.Send(`["clown.talk/-/config/set", ` + cfg + `]`)
	ws.Expect("clown.talk/-/config/ok")
	return ws
}

// TestStuckReaderIsCutAndOthersGoOn: a client that stops reading fills its
// socket; its writer takes over, blocks, and the watchdog cuts it after
// WriteTimeout, while a client on the same (only) shard keeps receiving.
func TestStuckReaderIsCutAndOthersGoOn(t *testing.T) {
	const writeTimeout = 500 * time.Millisecond
	h, addr := idleHub(t, Config{FlushShards: 1, WriteTimeout: writeTimeout, QueueBytes: 256 << 20, QueueMessages: 1 << 20})

	// The stuck client: a small receive buffer, a raw handshake, and no reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	stuck, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if _, err := stuck.Write([]byte(rawWSRequest)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stuck)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	// A masked config/set frame (a client masks what it sends).
	cfg := []byte(`["clown.talk/-/config/set", {"subscribe": ["big"]}]`)
	frame := append([]byte{0x81, 0x80 | byte(len(cfg)), 0, 0, 0, 0}, cfg...) // mask key 0: the payload as it is
	if _, err := stuck.Write(frame); err != nil {
		t.Fatal(err)
	}

	good := dialConfigured(t, addr, `{"subscribe": ["big", "tick"]}`)
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		started := 0
		for _, c := range h.sess.list() {
			h.fan.mu.Lock()
			if c.started {
				started++
			}
			h.fan.mu.Unlock()
		}
		return started == 2
	}, "the sessions did not start")

	// The reading client reads all along.
	lines := make(chan string, 128)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(lines)
		for {
			line, err := good.TryReadLine(hubtest.Timeout)
			if err != nil {
				return
			}
			lines <- line
		}
	}()
	defer func() { _ = good.Conn.Close(); <-readerDone }()

	// Fill the stuck client's socket: 4 MiB, far past what its kernel holds.
	payload := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	for range 64 {
		h.deliver(Message{Topic: "big", Payload: payload})
	}
	for range 64 {
		if line := hubtest.Receive(t, lines, hubtest.Timeout, "a big message"); !strings.HasPrefix(line, `["big",`) {
			t.Fatalf("the reading client got %.40q", line)
		}
	}
	// The stuck client's writer is blocked now; the other goes on.
	for i := range 20 {
		h.deliver(Message{Topic: "tick", Payload: []byte(strconv.Itoa(i))})
		if got, want := hubtest.Receive(t, lines, hubtest.Timeout, "a tick"), fmt.Sprintf(`["tick",%d]`, i); got != want {
			t.Fatalf("the reading client got %q, want %q", got, want)
		}
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return closesFor(h, ReasonWriteFailed) == 1 },
		"the stuck client was not cut (%d sessions)", len(h.sess.list()))
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 1 }, "the stuck client's session did not end")
	h.deliver(Message{Topic: "tick", Payload: []byte("last")})
	if got := hubtest.Receive(t, lines, hubtest.Timeout, "the last tick"); got != `["tick","last"]` {
		t.Fatalf("after the cut the reading client got %q", got)
	}
}

// TestOrderUnderConcurrency: many publishers, many clients, and a client
// that drops and resumes mid-flow: every client gets every publisher's
// messages exactly once, in order.
func TestOrderUnderConcurrency(t *testing.T) {
	const clients, publishers, perPublisher = 24, 4, 400
	h, addr := idleHub(t, Config{FlushShards: 2, MaxSessionsPerAddress: 64})
	var conns []*hubtest.WS
	for range clients {
		conns = append(conns, dialConfigured(t, addr, `{"subscribe": ["p/#"], "batch": true}`))
	}
	resumer := dialConfigured(t, addr, `{"subscribe": ["p/#"], "ids": true}`)

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := 1; i <= perPublisher; i++ {
				h.deliver(Message{Topic: fmt.Sprintf("p/%d", p), Payload: []byte(strconv.Itoa(i))})
			}
		})
	}

	// next[topic] is the number a client expects next on it.
	check := func(next map[string]int, who, line string) {
		f := hubtest.ParseFrame(t, line)
		n, err := strconv.Atoi(string(f.Payload))
		if err != nil || n != next[f.Topic] {
			t.Errorf("%s: %s brought %s, want %d", who, f.Topic, f.Payload, next[f.Topic])
			return
		}
		next[f.Topic]++
	}
	newNext := func() map[string]int {
		next := map[string]int{}
		for p := range publishers {
			next[fmt.Sprintf("p/%d", p)] = 1
		}
		return next
	}

	// The resumer reads half, drops, and resumes from its last id.
	next := newNext()
	var last string
	for range publishers * perPublisher / 2 {
		line := resumer.ReadLine()
		check(next, "resumer", line)
		var meta struct{ ID string }
		if err := json.Unmarshal(hubtest.ParseFrame(t, line).Meta, &meta); err != nil {
			t.Fatal(err)
		}
		last = meta.ID
	}
	_ = resumer.Conn.Close()
	resumed := dialConfigured(t, addr, `{"subscribe": ["p/#"], "ids": true, "since": "`+last+`"}`)
	for range publishers*perPublisher - publishers*perPublisher/2 {
		check(next, "resumed", resumed.ReadLine())
	}

	for i, ws := range conns {
		next := newNext()
		for range publishers * perPublisher {
			check(next, fmt.Sprint("client ", i), ws.ReadLine())
		}
	}
	wg.Wait()
}

// TestIdleSessionsHoldOnlyTheirReaders: an idle SSE stream holds one
// goroutine, its reader, an idle WebSocket session none (its reader is
// parked: idlereaders.go), and neither holds a writer, ticker or timer of
// its own: the hub's goroutines are the SSE readers, the parked readers'
// waiter and a constant.
func TestIdleSessionsHoldOnlyTheirReaders(t *testing.T) {
	const n = 50
	// Every allocation sampled: a timer or ticker a session holds shows in
	// the heap profile.
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	h, addr := idleHub(t, Config{MaxSessionsPerAddress: 2 * n, HelloTimeout: 20 * time.Millisecond})
	settle(t, h, 0)
	before := runtime.NumGoroutine()
	var conns []net.Conn
	for range n {
		conns = append(conns, dialRaw(t, addr, rawWSRequest), dialRaw(t, addr, rawSSERequest))
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	settle(t, h, 2*n)
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		if parked := h.readers.parkedCount(); parked != n {
			return fmt.Errorf("%d WebSocket sessions parked, want %d", parked, n)
		}
		if extra := runtime.NumGoroutine() - before; extra != n+1 {
			return fmt.Errorf("%d idle sessions hold %d goroutines, want one per SSE stream and the parked readers' waiter", 2*n, extra)
		}
		return nil
	})
	var profile strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&profile, 1)
	for _, busy := range []string{"runWriter", "writeLoop", "time.NewTicker", "time.Sleep"} {
		if strings.Contains(profile.String(), "bridge.(*Hub)."+busy) || strings.Contains(profile.String(), busy+"(") {
			t.Errorf("an idle session's goroutine is in %s:\n%s", busy, profile.String())
		}
	}
	runtime.GC()
	var heap strings.Builder
	_ = pprof.Lookup("heap").WriteTo(&heap, 1)
	// Each record: "inuse_objects: inuse_bytes [allocs: bytes] @ ...", then
	// its stack. The hub's own (the watchdog's, the shards') are a few.
	timers := 0
	for _, record := range strings.Split(heap.String(), "\n\n") {
		if strings.Contains(record, "motehub/bridge.") && (strings.Contains(record, "time.NewTicker") || strings.Contains(record, "time.NewTimer")) {
			var live int
			_, _ = fmt.Sscanf(record, "%d:", &live)
			timers += live
		}
	}
	if timers >= n {
		t.Errorf("%d idle sessions hold %d tickers and timers from the hub:\n%s", 2*n, timers, heap.String())
	}
}

// TestHijackedStreamOfAClientThatVanishes: an SSE stream over HTTP/1.1 is
// hijacked (its head says the body ends with the connection); a client
// that goes away is detached without a write.
func TestHijackedStreamOfAClientThatVanishes(t *testing.T) {
	h, addr := idleHub(t, Config{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(rawSSERequest)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !resp.Close || len(resp.TransferEncoding) != 0 ||
		resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("head %d %v close=%v chunked=%v: not a hijacked event stream", resp.StatusCode, resp.Header, resp.Close, resp.TransferEncoding)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 1 }, "the stream did not open")
	written := h.stats.bytesOutBy[transportSSE].Load()
	_ = conn.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 0 }, "the vanished client is still attached")
	if closesFor(h, ReasonClientGone) != 1 || h.stats.bytesOutBy[transportSSE].Load() != written {
		t.Fatalf("closes as gone %d, bytes written after it left %d", closesFor(h, ReasonClientGone), h.stats.bytesOutBy[transportSSE].Load()-written)
	}
}

// TestWatchdogHellosAreBounded: the hellos of sessions that ended before
// theirs was due are dropped once they are twice Config.MaxSessions.
func TestWatchdogHellosAreBounded(t *testing.T) {
	const maxSessions = 10
	h := newTestHub(t, Config{MaxSessions: maxSessions, HelloTimeout: time.Hour})
	for i := range 100 * maxSessions {
		c := newClient(fmt.Sprint(i), "ws", "", "test:1", auth.Anonymous, formatLines, &h.cfg)
		h.watch.add(c, time.Hour, time.Hour)
		h.watch.remove(c)
		h.watch.mu.Lock()
		n, members := len(h.watch.hello), len(h.watch.members)
		h.watch.mu.Unlock()
		if n > 2*maxSessions || members != 0 {
			t.Fatalf("after %d sessions came and went: %d hellos wait (bound %d), %d members", i+1, n, 2*maxSessions, members)
		}
	}
}

// TestWakeListsAClientOnce: however often and from however many
// goroutines a client is woken while it is owned, its shard lists it
// once; released with nothing to do it is idle, and one more wake lists
// it again.
func TestWakeListsAClientOnce(t *testing.T) {
	h := newTestHub(t, Config{QueueMessages: 10000})
	sh := &flushShard{hub: h, wake: make(chan struct{}, 1)} // no goroutine: the test looks at its list
	c := newClient("w", "ws", "", "test:1", auth.Anonymous, formatLines, &h.cfg)
	c.w.shard = sh
	c.out.notify = c.wake
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				c.out.push([]byte(strconv.Itoa(i)), 1)
				c.wake()
			}
		})
	}
	wg.Wait()
	listed := func() int {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		n := 0
		for _, x := range sh.ready {
			if x == c {
				n++
			}
		}
		return n
	}
	if n := listed(); n != 1 || c.w.owner.Load() != writeOwned {
		t.Fatalf("woken 16,000 times: listed %d times, owner state %d", n, c.w.owner.Load())
	}
	sh.ready = nil
	if !c.release() {
		t.Fatal("released with 8,000 lines queued, the owner was not told to go on")
	}
	if items, ok := c.out.takeUpTo(1 << 30); !ok || len(items) != 8000 {
		t.Fatalf("took %d lines (%v), want 8000", len(items), ok)
	}
	if c.release() || c.w.owner.Load() != writeIdle {
		t.Fatal("released with nothing to do, the client is not idle")
	}
	c.wake()
	c.wake()
	if n := listed(); n != 1 {
		t.Fatalf("an idle client woken twice is listed %d times", n)
	}
}

// TestEventStreamOverHTTP2KeepsItsWriterLoop: a stream net/http cannot
// hand over (HTTP/2) is written from its handler's goroutine, as before:
// retry first, then the messages, and "event: close" when the hub ends it.
func TestEventStreamOverHTTP2KeepsItsWriterLoop(t *testing.T) {
	h := newTestHub(t, Config{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeEvents(w, r, "") }))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/events?filter=t", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(prefix string) {
		t.Helper()
		for {
			line, ok := <-lines
			if !ok {
				t.Fatalf("the stream ended before %q", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return
			}
		}
	}
	expect("retry: ")
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 1 }, "the stream did not open")
	if c := h.sess.list()[0]; c.scheduled() {
		t.Fatal("an HTTP/2 stream was scheduled: its connection is not the hub's")
	}
	h.deliver(Message{Topic: "t", Payload: []byte("42")})
	expect(`data: ["t",42]`)
	closed := make(chan error, 1)
	go func() { closed <- h.Close(context.Background()) }()
	expect("event: close")
	expect(`data: {"reason":"going away","code":1001}`)
	if err := hubtest.Receive(t, closed, hubtest.Timeout, "the hub's close"); err != nil {
		t.Fatal(err)
	}
}

// TestWebSocketOverTLS: a connection without non-blocking writes (TLS)
// is written by its on-demand writer alone: messages arrive in order, and
// the hub's close reaches the client.
func TestWebSocketOverTLS(t *testing.T) {
	h := newTestHub(t, Config{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeWebSocket(w, r, "") }))
	defer srv.Close()
	d := websocket.Dialer{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: hubtest.Timeout}
	conn, _, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := hubtest.WrapWS(t, conn)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["t"]}]`)
	ws.Expect("clown.talk/-/config/ok")
	if c := h.sess.list()[0]; c.w.tx.stream().raw != nil {
		t.Fatal("a TLS connection offers non-blocking writes")
	}
	const n = 500
	go func() {
		for i := range n {
			h.deliver(Message{Topic: "t", Payload: []byte(strconv.Itoa(i))})
		}
	}()
	for i := range n {
		if got, want := ws.ReadLine(), fmt.Sprintf(`["t",%d]`, i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- h.Close(context.Background()) }()
	if _, err := ws.TryReadLine(hubtest.Timeout); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after the hub's close the client saw %v, want 1001", err)
	}
	_ = conn.Close()
	if err := hubtest.Receive(t, closed, hubtest.Timeout, "the hub's close"); err != nil {
		t.Fatal(err)
	}
}

// TestShardPause: a shard waits after a wide pass in proportion to its
// width, up to the whole window; never after a narrow one (low load), nor
// with the window off.
func TestShardPause(t *testing.T) {
	const window = 2 * time.Millisecond
	on, off := &flushShard{window: window}, &flushShard{window: -1}
	for _, c := range []struct {
		name string
		sh   *flushShard
		n    int
		want time.Duration
	}{
		{"narrow", on, 10, 0},
		{"just below wide", on, coalesceFrom - 1, 0},
		{"wide", on, coalesceFull / 2, window / 2},
		{"widest", on, 4 * coalesceFull, window},
		{"off, wide", off, coalesceFull, 0},
	} {
		if got := c.sh.pause(c.n); got != c.want {
			t.Errorf("%s: pause %v, want %v", c.name, got, c.want)
		}
	}
}
