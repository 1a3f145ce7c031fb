//go:build unix

package bridge_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// smallReceiveBuffer makes a client's socket take little before the hub's
// writes block, as a phone on a slow network does.
func smallReceiveBuffer(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}

// TestSlowReaderClosesWith4008: a client with a small receive buffer that
// keeps reading, slowly, and keeps sending, falls behind a fast stream and is
// closed as slow: it reads the close frame 4008 "slow" behind what its
// socket held, every time.
func TestSlowReaderClosesWith4008(t *testing.T) {
	h := startRealHub(t, bridge.Config{QueueMessages: 64, QueueBytes: 64 << 10})
	d := websocket.Dialer{
		HandshakeTimeout: hubtest.Timeout,
		NetDialContext:   (&net.Dialer{Control: smallReceiveBuffer}).DialContext,
	}
	payload := fmt.Appendf(nil, `"%s"`, strings.Repeat("x", 1000))
	for run := range closeRuns {
		conn, _, err := d.Dial(h.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/config/set", {"subscribe": ["feed"]}]`)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
		if _, data, err := conn.ReadMessage(); err != nil || !strings.Contains(string(data), "config/ok") {
			t.Fatalf("run %d: config/set answered %q, %v", run+1, data, err)
		}
		chatter := time.NewTicker(10 * time.Millisecond)
		c := startSendingClient(t, conn, func(int) (int, []byte) {
			<-chatter.C
			return websocket.TextMessage, []byte(`["chatter", 1]`)
		}, 500*time.Microsecond)

		// Publish, faster than the client reads, until the hub cuts it off.
		slow := h.Hub.Stats().SlowDisconnects
		for h.Hub.Stats().SlowDisconnects == slow {
			if err := h.Broker.Publish(context.Background(), bridge.Message{Topic: "feed", Payload: payload}); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		err = c.wait(t)
		chatter.Stop()
		requireClose(t, run, err, 4008)
		t.Logf("run %d: the close frame arrived after %v", run+1, time.Since(start).Round(time.Millisecond))
	}
}

// TestSlowSSEReaderIsToldWhy: an SSE client with a small receive buffer
// that keeps reading, slowly, falls behind a fast stream; it reads
// "event: close" with the reason slow behind what its socket held, then the
// end of the response, every time.
func TestSlowSSEReaderIsToldWhy(t *testing.T) {
	h := startRealHub(t, bridge.Config{QueueMessages: 64, QueueBytes: 64 << 10})
	payload := fmt.Sprintf(`"%s"`, strings.Repeat("x", 1000))
	dialer := net.Dialer{Control: smallReceiveBuffer}
	for run := range closeRuns / 4 {
		conn, err := dialer.Dial("tcp", strings.TrimPrefix(h.HTTP, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(3 * hubtest.Timeout))
		// HTTP/1.0: the response is the stream as it is (no chunks), and ends
		// with the connection.
		fmt.Fprintf(conn, "GET /events?filter=feed HTTP/1.0\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 1 }, "the stream did not start")

		result := make(chan string, 1)
		go func() { // reads slowly: 1 KiB every 500 µs
			pace := time.NewTicker(500 * time.Microsecond)
			defer pace.Stop()
			var got []byte
			buf := make([]byte, 1024)
			for {
				<-pace.C
				n, err := conn.Read(buf)
				got = append(got[max(0, len(got)-4096):], buf[:n]...) // the tail is enough
				if err != nil {
					result <- string(got)
					return
				}
			}
		}()
		slow := h.Hub.Stats().SlowDisconnects
		for h.Hub.Stats().SlowDisconnects == slow {
			h.publish(t, "feed", payload)
		}
		tail := hubtest.Receive(t, result, 3*hubtest.Timeout, "the end of the stream")
		_ = conn.Close()
		if !strings.Contains(tail, "event: close\ndata: {\"reason\":\"slow\",\"code\":4008}\n\n") {
			t.Fatalf("run %d: the stream ended with …%q, want event: close with the reason slow", run+1, tail[max(0, len(tail)-200):])
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 0 }, "the stream was not removed")
	}
}
