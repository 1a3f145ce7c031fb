package bridge_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// closeRuns is how many times each close test repeats: the reason must
// arrive every time, not most times.
const closeRuns = 20

// sendingClient is a WebSocket client that keeps sending while the hub closes
// its session, as a browser may: its writer sends next() until a write
// fails, its reader reads (paced by readPace, if set) until the connection
// ends. result is the error that ended the reading: a *websocket.CloseError
// when the close frame arrived. Like a browser (or Node's ws), it gives up
// on the connection when a write fails before it has the close frame (a
// reset: the hub closed while it was sending): then it sees no close code,
// what a page sees as 1006. wait reports such a reset even when the close
// frame came first: the hub must not reset a connection it closes.
type sendingClient struct {
	conn   *websocket.Conn
	wg     sync.WaitGroup
	result chan error
	reset  atomic.Value // error: a write that failed for a reason other than the close handshake
}

func startSendingClient(t *testing.T, conn *websocket.Conn, next func(i int) (kind int, data []byte), readPace time.Duration) *sendingClient {
	t.Helper()
	s := &sendingClient{conn: conn, result: make(chan error, 1)}
	_ = conn.SetReadDeadline(time.Now().Add(2 * hubtest.Timeout))
	_ = conn.SetWriteDeadline(time.Now().Add(2 * hubtest.Timeout))
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		for i := 0; ; i++ {
			kind, data := next(i)
			if err := conn.WriteMessage(kind, data); err != nil {
				if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
					s.reset.Store(err)
					_ = conn.Close()
				}
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		var pace *time.Ticker
		if readPace > 0 {
			pace = time.NewTicker(readPace)
			defer pace.Stop()
		}
		for {
			if pace != nil {
				<-pace.C
			}
			if _, _, err := conn.ReadMessage(); err != nil {
				s.result <- err
				return
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// wait returns how the reading ended, or the reset that ended the writing
// first.
func (s *sendingClient) wait(t *testing.T) error {
	t.Helper()
	err := hubtest.Receive(t, s.result, 3*hubtest.Timeout, "the end of the connection")
	if reset, ok := s.reset.Load().(error); ok {
		err = fmt.Errorf("a write failed (%w), then the reading ended with %v", reset, err)
	}
	s.stop()
	return err
}

func (s *sendingClient) stop() {
	_ = s.conn.Close()
	s.wg.Wait()
}

func requireClose(t *testing.T, run int, err error, code int) {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("run %d: the client saw %v, want the close code %d", run+1, err, code)
	}
}

// firstThenValid is what a sendingClient sends: first, then a valid line
// again and again.
func firstThenValid(first []byte) func(i int) (int, []byte) {
	return func(i int) (int, []byte) {
		if i == 0 {
			return websocket.TextMessage, first
		}
		return websocket.TextMessage, []byte(`["after", 1]`)
	}
}

// TestFrameTooLargeClosesWith1009 sends a 2 MiB frame (the limit is 1 MiB)
// and keeps sending: the client reads the close frame 1009 every time, not
// a reset (1006).
func TestFrameTooLargeClosesWith1009(t *testing.T) {
	h := startRealHub(t, bridge.Config{MessageRate: -1})
	large := []byte(`["big", "` + strings.Repeat("x", 2<<20) + `"]`)
	for run := range closeRuns {
		conn, _, err := websocket.DefaultDialer.Dial(h.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := startSendingClient(t, conn, firstThenValid(large), 0)
		requireClose(t, run, c.wait(t), websocket.CloseMessageTooBig)
	}
}

// TestFloodClosesWith1008 sends far past the message rate without pause:
// the client reads the close frame 1008 every time.
func TestFloodClosesWith1008(t *testing.T) {
	h := startRealHub(t, bridge.Config{MessageRate: 5})
	flood := []byte(strings.Repeat(`["flood", 1]`+"\n", 50))
	for run := range closeRuns {
		conn, _, err := websocket.DefaultDialer.Dial(h.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := startSendingClient(t, conn, func(int) (int, []byte) { return websocket.TextMessage, flood }, 0)
		err = c.wait(t)
		requireClose(t, run, err, websocket.ClosePolicyViolation)
		if ce := err.(*websocket.CloseError); ce.Text != "rate limit" {
			t.Fatalf("run %d: close 1008 said %q, want \"rate limit\"", run+1, ce.Text)
		}
	}
}

// TestInvalidUTF8TextClosesWith1007: RFC 6455 §8.1, a text frame that is
// not UTF-8 fails the connection with 1007. A binary frame carries lines as a
// text frame does: the session answers it, and a line in it that is not
// UTF-8 is answered with a bad-json error, the session goes on.
func TestInvalidUTF8TextClosesWith1007(t *testing.T) {
	h := startRealHub(t, bridge.Config{})

	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["bin/#"]}]`)
	ws.Expect("clown.talk/-/config/ok")
	if err := ws.Conn.WriteMessage(websocket.BinaryMessage, []byte(`["clown.talk/-/subscribe", ["more"]]`)); err != nil {
		t.Fatal(err)
	}
	ws.Expect("clown.talk/-/subscribe/ok")
	if err := ws.Conn.WriteMessage(websocket.BinaryMessage, []byte("[\"bin/x\", \"\xff\xfe\"]")); err != nil {
		t.Fatal(err)
	}
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"bad-json"`) {
		t.Fatalf("a binary frame that is not UTF-8: %s", f.Payload)
	}

	for run := range closeRuns {
		conn, _, err := websocket.DefaultDialer.Dial(h.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := startSendingClient(t, conn, firstThenValid([]byte("[\"t\", \"\xc3\x28\"]")), 0)
		requireClose(t, run, c.wait(t), websocket.CloseInvalidFramePayloadData)
	}
}

// TestVersionMismatchAnswers426: a handshake for another WebSocket version
// is answered 426 with the version the hub speaks (RFC 6455 §4.2.2).
func TestVersionMismatchAnswers426(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.HTTP, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(hubtest.Timeout))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", strings.TrimPrefix(h.HTTP, "http://"))
	resp, err := readResponse(conn)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 426 || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("version 8: %s, Sec-WebSocket-Version %q; want 426 and 13", resp.Status, resp.Header.Get("Sec-WebSocket-Version"))
	}
	if !strings.Contains(resp.Body, `"code":"unsupported"`) {
		t.Fatalf("version 8: body %s, want a JSON error", resp.Body)
	}
}

type rawResponse struct {
	*http.Response
	Body string
}

// readResponse reads an HTTP response from conn, body included.
func readResponse(conn net.Conn) (rawResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return rawResponse{resp, string(body)}, err
}
