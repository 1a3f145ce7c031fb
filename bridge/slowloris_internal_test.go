package bridge

import (
	"bufio"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestSlowlorisWebSocketIsCut: a client that sends the header of a frame
// and a few of its bytes, then nothing (and so answers no ping: a pong
// cannot come in the middle of a frame), holds its reader deep in
// gorilla's, not at the shallow wait; the watchdog closes it as idle after
// PongWait all the same, it gets the close frame, and its session ends.
func TestSlowlorisWebSocketIsCut(t *testing.T) {
	const pongWait = 300 * time.Millisecond
	h, addr := idleHub(t, Config{PongWait: pongWait})
	conn := dialRaw(t, addr, rawWSRequest)
	defer conn.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 1 }, "the session did not attach")

	// A masked text frame of 100 bytes: its header, its mask, 10 bytes.
	frame := []byte{0x81, 0x80 | 100, 0, 0, 0, 0}
	frame = append(frame, []byte(`["clown.t`)...)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return closesFor(h, ReasonIdle) == 1 },
		"the silent client was not closed as idle")
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 0 }, "its session did not end")
	if waited := time.Since(start); waited < pongWait/2 {
		t.Fatalf("cut after %v, before PongWait (%v)", waited, pongWait)
	}

	// What the hub wrote: pings, then the close frame with 1001 "idle timeout".
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	br := bufio.NewReader(conn)
	for range 100 {
		var head [2]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		payload := make([]byte, head[1]&0x7f) // the hub's control frames are short and unmasked
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		switch head[0] & 0x0f {
		case 0x9: // a ping
			continue
		case 0x8:
			if len(payload) < 2 || binary.BigEndian.Uint16(payload) != uint16(ReasonIdle.Code) || string(payload[2:]) != ReasonIdle.Text {
				t.Fatalf("close frame %q, want %d %q", payload, ReasonIdle.Code, ReasonIdle.Text)
			}
			return
		default:
			t.Fatalf("unexpected frame %#x", head[0])
		}
	}
	t.Fatal("no close frame among 100 frames")
}
