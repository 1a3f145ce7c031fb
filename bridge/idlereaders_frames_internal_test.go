package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// clientFrame is a client's frame (masked with key 0) of opcode and
// payload, at most 125 bytes, final or not.
func clientFrame(final bool, opcode byte, payload string) []byte {
	first := opcode
	if final {
		first |= 0x80
	}
	return append([]byte{first, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// TestParkedSessionReadsFramesSplitAcrossSegments: what a client sends a
// piece at a time resumes its parked session, which reads each frame whole
// and parks again after: a pong whose first byte comes alone, a message in
// two fragments with a pong between them, a ping (gorilla answers it).
func TestParkedSessionReadsFramesSplitAcrossSegments(t *testing.T) {
	h, addr := idleHub(t, Config{})
	conn := dialRaw(t, addr, rawWSRequest)
	defer conn.Close()
	eventuallyParked(t, h, 1)
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	write := func(b []byte) {
		t.Helper()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}

	pong := maskedFrame(websocket.PongMessage, "split")
	write(pong[:1])
	eventuallyParked(t, h, 0) // resumed, waiting for the rest of the pong
	write(pong[1:])
	eventuallyParked(t, h, 1)

	set := `["clown.talk/-/config/set", {"subscribe": ["a"]}]`
	write(clientFrame(false, websocket.TextMessage, set[:10]))
	eventuallyParked(t, h, 0) // gorilla waits for the message's end
	write(maskedFrame(websocket.PongMessage, "between"))
	write(clientFrame(true, 0 /* continuation */, set[10:]))
	if got := readServerFrame(t, br); !strings.Contains(got, "clown.talk/-/config/ok") {
		t.Fatalf("after a fragmented config/set the client got %q", got)
	}
	eventuallyParked(t, h, 1)

	write(maskedFrame(websocket.PingMessage, "are you there"))
	if got := readServerFrame(t, br); got != "are you there" {
		t.Fatalf("a ping was answered %q", got)
	}
	write(maskedFrame(websocket.TextMessage, `["clown.talk/-/config/set", {"subscribe": ["b"]}]`))
	if got := readServerFrame(t, br); !strings.Contains(got, "clown.talk/-/config/ok") {
		t.Fatalf("after a ping, a config/set was answered %q", got)
	}
	eventuallyParked(t, h, 1)
	h.deliver(Message{Topic: "b", Payload: []byte("1")})
	if got := readServerFrame(t, br); got != "[\"b\",1]\n" {
		t.Fatalf("the parked session got %q", got)
	}
	if n := len(h.sess.list()); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

// TestParkedSessionLosesNoFrameInBursts: messages sent in bursts of one to
// four, while the session parks and resumes between and within them (a
// frame that arrives as the reader parks), are each answered, in order.
func TestParkedSessionLosesNoFrameInBursts(t *testing.T) {
	h, addr := idleHub(t, Config{MessageRate: -1})
	ws := dialConfigured(t, addr, `{"subscribe": ["a"]}`)
	eventuallyParked(t, h, 1)
	const rounds = 300
	for i := range rounds {
		burst := i%4 + 1
		for j := range burst {
			ws.Send(fmt.Sprintf(`["clown.talk/-/config/set", {"subscribe": ["a/%d/%d"]}]`, i, j))
		}
		for j := range burst {
			f := ws.Expect("clown.talk/-/config/ok")
			if !strings.Contains(string(f.Payload), fmt.Sprintf(`"a/%d/%d"`, i, j)) {
				t.Fatalf("round %d, message %d answered %s", i, j, f.Payload)
			}
		}
	}
	eventuallyParked(t, h, 1)
}

// TestParkedSessionsEndWhileTheirClientsTalk: sessions the hub ends while
// their clients keep sending (each end racing the reader's resume and
// park) all end, none stays parked, and every client sees its connection
// close.
func TestParkedSessionsEndWhileTheirClientsTalk(t *testing.T) {
	const n = 16
	h, addr := idleHub(t, Config{MessageRate: -1})
	var clients []*hubtest.WS
	for range n {
		clients = append(clients, dialConfigured(t, addr, `{"subscribe": ["a"]}`))
	}
	eventuallyParked(t, h, n)
	ended := make(chan error, n)
	for i, ws := range clients {
		go func() { // sends and reads until the hub closes the connection
			_ = ws.Conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
			for j := 0; ; j++ {
				msg := fmt.Sprintf(`["clown.talk/-/config/set", {"subscribe": ["a/%d/%d"]}]`, i, j)
				if err := ws.Conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					ended <- nil // the hub closed first
					return
				}
				if _, _, err := ws.Conn.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) {
						ended <- err
						return
					}
					ended <- nil
					return
				}
			}
		}()
	}
	for _, c := range h.sess.list() {
		c.close(ReasonDisconnected)
	}
	for range n {
		if err := <-ended; err != nil {
			t.Errorf("a client's connection ended with %v, not a close frame", err)
		}
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(h.sess.list()) == 0 }, "sessions did not end")
	eventuallyParked(t, h, 0)
}
