package bridge

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// countingConn records what is written to it, one entry per Write.
type countingConn struct {
	net.Conn
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

// TestCoalescingConnOneWritePerDrain: what is written while held goes out
// in as few writes as the flush size allows, byte for byte, and writes
// outside a hold go straight through.
func TestCoalescingConnOneWritePerDrain(t *testing.T) {
	under := &countingConn{}
	c := &coalescingConn{Conn: under, timeout: time.Second}
	var want []byte
	c.hold()
	for i := range 100 {
		frame := []byte{0x81, 3, 'a', 'b', byte('0' + i%10)}
		want = append(want, frame...)
		if n, err := c.Write(frame); n != len(frame) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if len(under.writes) != 0 {
		t.Fatalf("%d writes reached the connection during the hold", len(under.writes))
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 1 || !bytes.Equal(under.writes[0], want) {
		t.Fatalf("after the hold: %d writes, want 1 with the 100 frames in order", len(under.writes))
	}
	_, _ = c.Write([]byte("pong"))
	if len(under.writes) != 2 || string(under.writes[1]) != "pong" {
		t.Fatal("a write outside a hold did not go straight through")
	}

	big := bytes.Repeat([]byte("x"), 1000)
	c.hold()
	for range 100 { // 100 kB: flushed along the way, at most coalesceFlushAt at a time
		_, _ = c.Write(big)
	}
	_ = c.release()
	total := 0
	for _, w := range under.writes[2:] {
		total += len(w)
	}
	if n := len(under.writes) - 2; n != 100_000/coalesceFlushAt+1 || total != 100_000 {
		t.Fatalf("100 kB went out in %d writes of %d bytes in all, want %d writes", n, total, 100_000/coalesceFlushAt+1)
	}

	// A frame larger than the buffer goes out in one write of its own,
	// after what was gathered before it.
	under.writes = nil
	huge := bytes.Repeat([]byte("y"), 3*coalesceFlushAt)
	c.hold()
	_, _ = c.Write([]byte("head"))
	_, _ = c.Write(huge)
	_, _ = c.Write([]byte("tail"))
	_ = c.release()
	if len(under.writes) != 3 || string(under.writes[0]) != "head" || !bytes.Equal(under.writes[1], huge) || string(under.writes[2]) != "tail" {
		t.Fatalf("a large frame between small ones went out in %d writes", len(under.writes))
	}
}

// TestWebSocketFramesOfEverySize: lines of every length class of the frame
// header (7-bit, 16-bit and 64-bit lengths, at their edges, and larger than
// the coalescing buffer) reach a real gorilla client intact and in order,
// one per frame, and joined in frames of several lines with batch on.
func TestWebSocketFramesOfEverySize(t *testing.T) {
	h := newTestHub(t, Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeWebSocket(w, r, "") }))
	defer srv.Close()
	sizes := []int{9, 125, 126, 127, 1000, 65535, 65536, 65537, coalesceFlushAt - 2, coalesceFlushAt + 10, 300_000}

	for _, batch := range []bool{false, true} {
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cfg := `["clown.talk/-/config/set", {"subscribe": ["t"]}]`
		if batch {
			cfg = `["clown.talk/-/config/set", {"subscribe": ["t"], "batch": true}]`
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(cfg)); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := conn.ReadMessage(); err != nil || !bytes.Contains(ok, []byte("config/ok")) {
			t.Fatalf("config/set answered %q, %v", ok, err)
		}
		var want []string
		for _, size := range sizes { // a line is ["t","…"]: 8 bytes around the text
			text := strings.Repeat(string(rune('a'+len(want)%26)), size-8)
			want = append(want, `["t","`+text+`"]`)
			h.deliver(Message{Topic: "t", Payload: []byte(text)})
		}
		var got []string
		frames := 0
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for len(got) < len(want) {
			_, frame, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("batch %v: after %d lines: %v", batch, len(got), err)
			}
			frames++
			got = append(got, strings.Split(strings.TrimSuffix(string(frame), "\n"), "\n")...)
		}
		for i := range want {
			if i >= len(got) || got[i] != want[i] {
				t.Fatalf("batch %v: line %d (%d bytes) arrived wrong", batch, i, sizes[i])
			}
		}
		if !batch && frames != len(want) {
			t.Fatalf("%d lines in %d frames without batch", len(want), frames)
		}
	}
}
