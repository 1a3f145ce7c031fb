package bridge

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// idleHub serves the WebSocket at /ws and the SSE stream at /events.
func idleHub(tb testing.TB, cfg Config) (*Hub, string) {
	tb.Helper()
	h := newTestHub(tb, cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { h.ServeWebSocket(w, r, "") })
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) { h.ServeEvents(w, r, "") })
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return h, strings.TrimPrefix(srv.URL, "http://")
}

// The smallest clients there are, so that a measure in this process is
// mostly the hub's: a socket, a handshake written by hand, and no goroutine.
const (
	rawWSRequest  = "GET /ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	rawSSERequest = "GET /events HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n"
)

// dialRaw opens a connection to addr, sends request, and reads the
// response's status line and headers; the connection is then left alone.
func dialRaw(tb testing.TB, addr, request string) net.Conn {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Write([]byte(request)); err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(conn, 256)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") && !strings.Contains(status, " 200 ") {
		tb.Fatalf("%q answered %q, %v", request[:20], status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			tb.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn
}

// heldBytes is what the process holds in heap objects and goroutine
// stacks, after collecting twice.
func heldBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkIdle measures what an idle session costs the hub: heap and
// stacks per session (the client's socket, a few hundred bytes, included),
// and goroutines per session, for 1,000 WebSocket sessions (started with
// the default filters after the hello timeout), the same once each has
// sent a pong (as a browser answering the hub's pings does), and 1,000
// SSE streams.
func BenchmarkIdle(b *testing.B) {
	pong := string(maskedFrame(websocket.PongMessage, "ping"))
	for _, kind := range []struct{ name, request, then string }{
		{"WS", rawWSRequest, ""},
		{"WS-pong", rawWSRequest, pong},
		{"SSE", rawSSERequest, ""},
	} {
		b.Run(kind.name, func(b *testing.B) {
			const n = 1000
			h, addr := idleHub(b, Config{MaxSessionsPerAddress: n, MaxSessions: n, HelloTimeout: 50 * time.Millisecond})
			for b.Loop() {
				settle(b, h, 0)
				goroutines, before := runtime.NumGoroutine(), heldBytes()
				conns := make([]net.Conn, n)
				for i := range conns {
					conns[i] = dialRaw(b, addr, kind.request)
				}
				settle(b, h, n)
				if kind.then != "" {
					for _, c := range conns {
						if _, err := c.Write([]byte(kind.then)); err != nil {
							b.Fatal(err)
						}
					}
					settle(b, h, n)
				}
				held, perSession := heldBytes()-before, float64(runtime.NumGoroutine()-goroutines)/n
				b.ReportMetric(float64(held)/n, "bytes/session")
				b.ReportMetric(perSession, "goroutines/session")
				for _, c := range conns {
					_ = c.Close()
				}
				settle(b, h, 0)
			}
		})
	}
}

// settle waits until the hub has n sessions, each started (after the hello
// timeout), and then a little longer for stacks and buffers to come to rest.
func settle(tb testing.TB, h *Hub, n int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		clients := h.sess.list()
		started := 0
		h.fan.mu.Lock()
		for _, c := range clients {
			if c.started {
				started++
			}
		}
		h.fan.mu.Unlock()
		if len(clients) == n && started == n {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d sessions, %d started; want %d", len(clients), started, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // past the hello timeout of the last
}
