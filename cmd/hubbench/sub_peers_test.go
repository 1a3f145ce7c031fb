package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeWS serves one WebSocket endpoint whose connections script handles.
func fakeWS(t *testing.T, script func(c *websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		script(c)
	}))
	t.Cleanup(srv.Close)
	return "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/"
}

// expect reads the next message and checks it.
func expect(t *testing.T, c *websocket.Conn, want string) bool {
	t.Helper()
	_, msg, err := c.ReadMessage()
	if err != nil || string(msg) != want {
		t.Errorf("the client sent %q (%v), want %q", msg, err, want)
		return false
	}
	return true
}

// TestNATSSubscriberProtocol: the handshake, a server PING answered while
// reading, a MSG split across frames and two in one, and -ERR ending the read.
func TestNATSSubscriberProtocol(t *testing.T) {
	t.Parallel()
	url := fakeWS(t, func(c *websocket.Conn) {
		_ = c.WriteMessage(websocket.BinaryMessage, []byte("INFO {\"server_id\":\"x\"}\r\n"))
		if !expect(t, c, natsConnectLine+"SUB bench 1\r\nPING\r\n") {
			return
		}
		_ = c.WriteMessage(websocket.BinaryMessage, []byte("PONG\r\nPING\r\n"))
		if !expect(t, c, "PONG\r\n") {
			return
		}
		msg := func(seq int) string {
			p := string(appendBenchPayload(nil, uint64(seq), time.Now().UnixNano(), 100))
			return "MSG bench 1 100\r\n" + p + "\r\n"
		}
		first := msg(1)
		_ = c.WriteMessage(websocket.BinaryMessage, []byte(first[:30]))
		_ = c.WriteMessage(websocket.BinaryMessage, []byte(first[30:]+msg(2)+msg(3)))
		_ = c.WriteMessage(websocket.BinaryMessage, []byte("-ERR 'Slow Consumer'\r\n"))
		_, _, _ = c.ReadMessage() // until the client closes
	})
	st := newTestState()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := connectSubscriber(ctx, transportNATSWS, url, "", st)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	err = s.read()
	if err == nil || !strings.Contains(err.Error(), "Slow Consumer") {
		t.Errorf("read ended with %v, want the server's -ERR", err)
	}
	if st.seq.received != 3 || st.seq.countRange(1, 3) != 3 {
		t.Errorf("received %d messages, want 1, 2 and 3", st.seq.received)
	}
}

// TestCentrifugoSubscriberProtocol: connect and subscribe in one frame,
// both replies, a ping answered, pushes one per line.
func TestCentrifugoSubscriberProtocol(t *testing.T) {
	t.Parallel()
	url := fakeWS(t, func(c *websocket.Conn) {
		if !expect(t, c, centrifugoConnectCmd+"\n"+centrifugoSubscribeCmd) {
			return
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"connect":{"client":"c","ping":25,"pong":true}}`+"\n"+`{"id":2,"subscribe":{}}`))
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{}`))
		if !expect(t, c, `{}`) {
			return
		}
		push := func(seq int) string {
			return `{"push":{"channel":"bench","pub":{"data":` + string(appendBenchPayload(nil, uint64(seq), time.Now().UnixNano(), 100)) + `}}}`
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(push(1)+"\n"+push(2)))
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"push":{"channel":"bench","leave":{}}}`))
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(3001, "shutdown"))
		_, _, _ = c.ReadMessage()
	})
	st := newTestState()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := connectSubscriber(ctx, transportCentWS, url, "", st)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.read(); err == nil || !strings.Contains(err.Error(), "3001") {
		t.Errorf("read ended with %v, want the close 3001", err)
	}
	if st.seq.received != 2 || st.sink.others.Load() != 1 {
		t.Errorf("received %d messages and %d others, want 2 and 1 (the leave)", st.seq.received, st.sink.others.Load())
	}
}

// TestCentrifugoSubscribeRefused: an error reply to subscribe fails the connect.
func TestCentrifugoSubscribeRefused(t *testing.T) {
	t.Parallel()
	url := fakeWS(t, func(c *websocket.Conn) {
		_, _, _ = c.ReadMessage()
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"connect":{}}`+"\n"+`{"id":2,"error":{"code":103,"message":"permission denied"}}`))
		_, _, _ = c.ReadMessage()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := connectSubscriber(ctx, transportCentWS, url, "", newTestState()); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("connect: %v, want the refusal", err)
	}
}
