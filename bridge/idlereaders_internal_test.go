package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// eventuallyParked waits until n WebSocket sessions are parked, and checks
// the bound of the parked readers: never more than the sessions.
func eventuallyParked(t *testing.T, h *Hub, n int) {
	t.Helper()
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		parked, sessions := h.readers.parkedCount(), len(h.sess.list())
		if parked > sessions {
			t.Fatalf("%d readers parked for %d sessions", parked, sessions)
		}
		if parked != n {
			return fmt.Errorf("%d sessions parked, want %d", parked, n)
		}
		return nil
	})
}

// maskedFrame is a client's frame (final, masked with key 0) of opcode and
// payload, at most 125 bytes.
func maskedFrame(opcode byte, payload string) []byte {
	return append([]byte{0x80 | opcode, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// TestParkedSessionWakesForWhatItsClientSends: an idle session is parked;
// each frame its client sends resumes it, is answered, and the session
// parks again; messages reach it while it is parked.
func TestParkedSessionWakesForWhatItsClientSends(t *testing.T) {
	h, addr := idleHub(t, Config{})
	ws := dialConfigured(t, addr, `{"subscribe": ["a/#"]}`)
	eventuallyParked(t, h, 1)
	for i := range 3 {
		ws.Send(fmt.Sprintf(`["clown.talk/-/config/set", {"subscribe": ["a/%d"]}]`, i))
		ws.Expect("clown.talk/-/config/ok")
		eventuallyParked(t, h, 1)
		h.deliver(Message{Topic: fmt.Sprintf("a/%d", i), Payload: []byte(fmt.Sprint(i))})
		if got, want := ws.ReadLine(), fmt.Sprintf(`["a/%d",%d]`, i, i); got != want {
			t.Fatalf("parked session got %q, want %q", got, want)
		}
	}
	_ = ws.Conn.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 0 }, "the session did not end with its connection")
	eventuallyParked(t, h, 0)
}

// TestSessionAnsweringPingsStaysParked: a browser that answers the
// watchdog's pings and sends nothing else stays, past several pong waits,
// with its session parked: the pongs are read without gorilla, which would
// wait for a message after them, deep in its reader.
func TestSessionAnsweringPingsStaysParked(t *testing.T) {
	const pongWait = 600 * time.Millisecond
	h, addr := idleHub(t, Config{PongWait: pongWait})
	ws := dialConfigured(t, addr, `{"subscribe": ["a"]}`)
	var pings atomic.Int32
	ws.Conn.SetPingHandler(func(data string) error {
		pings.Add(1)
		return ws.Conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	readerDone := make(chan error, 1)
	go func() { // reading makes gorilla answer pings
		_, _, err := ws.Conn.ReadMessage()
		readerDone <- err
	}()
	// Three pings answered span more than the pong wait (one goes out
	// every 3/4 of it).
	hubtest.Eventually(t, 10*pongWait, func() bool { return pings.Load() >= 4 }, "%d pings in %v", pings.Load(), 10*pongWait)
	if n := len(h.sess.list()); n != 1 {
		t.Fatalf("the answering client was closed: %d sessions", n)
	}
	eventuallyParked(t, h, 1)
	var stacks strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
	if strings.Contains(stacks.String(), "bridge.(*wsSession)") {
		t.Errorf("a session's reader waits after the pongs:\n%s", stacks.String())
	}
	_ = ws.Conn.Close()
	if err := <-readerDone; err == nil {
		t.Error("the client's reader ended without an error")
	}
}

// TestPongSkipLeavesTheRestToGorilla: a pong read before gorilla leaves
// what follows it, in the same segment, to gorilla; a pong that breaks the
// protocol (unmasked) is gorilla's to refuse.
func TestPongSkipLeavesTheRestToGorilla(t *testing.T) {
	h, addr := idleHub(t, Config{})
	conn := dialRaw(t, addr, rawWSRequest)
	defer conn.Close()
	eventuallyParked(t, h, 1)
	frames := append(maskedFrame(websocket.PongMessage, "still here"),
		maskedFrame(websocket.TextMessage, `["clown.talk/-/config/set", {"subscribe": ["a"]}]`)...)
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	if got := readServerFrame(t, br); !strings.Contains(got, "clown.talk/-/config/ok") {
		t.Fatalf("after a pong and a config/set the client got %q", got)
	}
	eventuallyParked(t, h, 1)

	unmasked := []byte{0x80 | websocket.PongMessage, 0}
	if _, err := conn.Write(unmasked); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 0 }, "an unmasked pong was taken")
	eventuallyParked(t, h, 0)
}

// readServerFrame reads one unmasked, unfragmented frame of at most 64 KiB
// from the hub and returns its payload.
func readServerFrame(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var head [2]byte
	if _, err := readFull(br, head[:]); err != nil {
		t.Fatal(err)
	}
	size := int(head[1] & 0x7f)
	if size == 126 {
		var ext [2]byte
		if _, err := readFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		size = int(ext[0])<<8 | int(ext[1])
	}
	payload := make([]byte, size)
	if _, err := readFull(br, payload); err != nil {
		t.Fatal(err)
	}
	return string(payload)
}

func readFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestParkedSessionsEndWithTheHub: parked sessions the hub ends (one
// disconnected, the rest at Close, whose clients read their close frames)
// resume, write their close and detach; Close returns with none parked and
// the waiter gone (goleak checks it at the end).
func TestParkedSessionsEndWithTheHub(t *testing.T) {
	const n = 5
	h, addr := idleHub(t, Config{})
	var clients []*hubtest.WS
	for range n {
		clients = append(clients, dialConfigured(t, addr, `{"subscribe": ["a"]}`))
	}
	eventuallyParked(t, h, n)

	id := h.sess.list()[0].id
	if _, ok := h.DisconnectSession(id); !ok {
		t.Fatalf("session %s not found", id)
	}
	eventuallyParked(t, h, n-1)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == n-1 }, "the disconnected session did not end")

	closed := make(chan error, n)
	for _, ws := range clients {
		go func() { // a reading client answers the close frame
			for {
				if _, _, err := ws.Conn.ReadMessage(); err != nil {
					closed <- err
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), hubtest.Timeout)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if parked := h.readers.parkedCount(); parked != 0 {
		t.Errorf("%d sessions parked after Close", parked)
	}
	var going int
	for range n {
		var ce *websocket.CloseError
		if err := <-closed; errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway {
			going++
		}
	}
	if going != n-1 {
		t.Errorf("%d clients read \"going away\", want %d", going, n-1)
	}
}

// TestParkedSessionsCutAtAShutdownOutOfTime: Close whose context has ended
// cuts the connections of parked sessions whose clients read nothing; they
// end all the same.
func TestParkedSessionsCutAtAShutdownOutOfTime(t *testing.T) {
	const n = 3
	h, addr := idleHub(t, Config{})
	for range n {
		conn := dialRaw(t, addr, rawWSRequest)
		defer conn.Close()
	}
	settle(t, h, n) // started by the hello timeout
	eventuallyParked(t, h, n)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = h.Close(ctx) // an error unless the sessions ended before it looked
	if sessions, parked := len(h.sess.list()), h.readers.parkedCount(); sessions != 0 || parked != 0 {
		t.Fatalf("after Close: %d sessions, %d parked", sessions, parked)
	}
}

// TestSessionsThatCannotParkKeepTheirReaders: where no reader parks (epoll
// unavailable), each session waits on its reader's goroutine and works as
// a parked one does.
func TestSessionsThatCannotParkKeepTheirReaders(t *testing.T) {
	h, addr := idleHub(t, Config{})
	h.readers.mu.Lock()
	h.readers.failed = true
	h.readers.mu.Unlock()
	settle(t, h, 0)
	before := runtime.NumGoroutine()
	ws := dialConfigured(t, addr, `{"subscribe": ["a"]}`)
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		if extra := runtime.NumGoroutine() - before; extra != 1 {
			return fmt.Errorf("%d goroutines for one session, want its reader", extra)
		}
		return nil
	})
	if parked := h.readers.parkedCount(); parked != 0 {
		t.Fatalf("%d sessions parked", parked)
	}
	h.deliver(Message{Topic: "a", Payload: []byte("1")})
	if got := ws.ReadLine(); got != `["a",1]` {
		t.Fatalf("got %q", got)
	}
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["b"]}]`)
	ws.Expect("clown.talk/-/config/ok")
	_ = ws.Conn.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 0 }, "the session did not end")
}
