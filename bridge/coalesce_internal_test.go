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

	"github.com/motehub/motehub/auth"
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

// TestGathererOneWritePerDrain: the lines a writer drains go out framed,
// byte for byte, in as few writes as its buffer allows; a line larger than
// the buffer goes out on its own, after what was gathered before it.
func TestGathererOneWritePerDrain(t *testing.T) {
	h := newTestHub(t, Config{})
	under := &countingConn{}
	c := newClient("g", "ws", "", "test:1", auth.Anonymous, formatLines, &h.cfg)
	s := &wsSession{hub: h, c: c, net: newStreamConn(under)}
	g := gatherer{conn: s.net, c: c, tx: s}
	written := func() (all []byte) {
		for _, w := range under.writes {
			all = append(all, w...)
		}
		return all
	}

	var lines [][]byte
	var want []byte
	for i := range 100 {
		line := []byte{'a', 'b', byte('0' + i%10), '\n'}
		lines = append(lines, line)
		want = append(appendTextHeader(want, len(line)), line...)
	}
	if err := g.write(lines); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 0 {
		t.Fatalf("%d writes reached the connection before the flush", len(under.writes))
	}
	if err := g.flush(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 1 || !bytes.Equal(under.writes[0], want) {
		t.Fatalf("after the flush: %d writes, want 1 with the 100 frames in order", len(under.writes))
	}

	under.writes = nil
	big := bytes.Repeat([]byte("x"), 1000)
	lines, want = lines[:0], want[:0]
	for range 100 { // 100 kB: written along the way, at most writerBufferSize at a time
		lines = append(lines, big)
		want = append(appendTextHeader(want, len(big)), big...)
	}
	_ = g.write(lines)
	_ = g.flush()
	if n, most := len(under.writes), len(want)/(writerBufferSize-2*maxTextHeader-len(big))+1; n > most || !bytes.Equal(written(), want) {
		t.Fatalf("100 kB went out in %d writes (want at most %d), or not byte for byte", n, most)
	}

	under.writes = nil
	huge := bytes.Repeat([]byte("y"), 3*writerBufferSize)
	_ = g.write([][]byte{[]byte("head"), huge, []byte("tail")})
	_ = g.flush()
	want = append(appendTextHeader(nil, 4), "head"...)
	want = append(appendTextHeader(want, len(huge)), huge...)
	want = append(appendTextHeader(want, 4), "tail"...)
	if !bytes.Equal(written(), want) || !bytes.Equal(under.writes[0], want[:6]) {
		t.Fatalf("a large line between small ones went out in %d writes, not in order", len(under.writes))
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
	sizes := []int{9, 125, 126, 127, 1000, 65535, 65536, 65537, flushBufferSize - 2, flushBufferSize + 10, writerBufferSize - 2, writerBufferSize + 10, 300_000}

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
