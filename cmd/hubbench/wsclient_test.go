package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeHub is a Clown.Talk server just big enough for the client: it answers
// config/set with config/ok, then runs script with the connection and the
// pongs it receives (a reader goroutine takes them).
func fakeHub(t *testing.T, script func(c *websocket.Conn, pongs <-chan string)) string {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"clown.talk"}, WriteBufferSize: 512}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := c.ReadMessage()
		if err != nil || !strings.HasPrefix(string(msg), `["clown.talk/-/config/set",`) {
			t.Errorf("first message %q, %v", msg, err)
			return
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/config/ok",{"ack":false,"session":"s"}]`+"\n"))
		pongs := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pongs <- s; return nil })
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		script(c, pongs)
		<-readerDone // the client answered the close, or the deadline passed
	}))
	t.Cleanup(srv.Close)
	return "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/ws"
}

func newTestState() *subState {
	return &subState{seq: newSeqTracker(1 << 20), sink: &sink{lat: newLatencies(2, 0, 1<<62)}}
}

func TestClownSubscriber(t *testing.T) {
	t.Parallel()
	pong := make(chan string, 1)
	url := fakeHub(t, func(c *websocket.Conn, pongs <-chan string) {
		now := time.Now().UnixNano()
		line := func(s uint64) string {
			return fmt.Sprintf(`["bench/t",%s]`+"\n", appendBenchPayload(nil, s, now, 100))
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(line(1)))
		// A batch of lines, larger than the write buffer: gorilla sends it in fragments.
		var batch strings.Builder
		for s := uint64(2); s <= 40; s++ {
			batch.WriteString(line(s))
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(batch.String()))
		_ = c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second))
		_ = c.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/error",{"code":"x"}]`+"\n"))
		_ = c.WriteMessage(websocket.TextMessage, []byte(line(41)))
		select {
		case p := <-pongs:
			pong <- p
		case <-time.After(2 * time.Second):
		}
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4008, "slow"), time.Now().Add(time.Second))
	})
	st := newTestState()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := connectClown(ctx, url, clownConfig{Subscribe: []string{"bench/#"}, Batch: true}, 16<<10, st)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	err = s.read()
	var ce *wsCloseError
	if !errors.As(err, &ce) || ce.Code != 4008 || ce.Reason != "slow" || !errors.Is(err, errWSClosed) {
		t.Errorf("read ended with %v, want the close 4008 slow", err)
	}
	if st.seq.received != 41 || st.seq.countRange(1, 41) != 41 || st.sink.others.Load() != 1 {
		t.Errorf("received %d (others %d), want 41 (1)", st.seq.received, st.sink.others.Load())
	}
	if n := st.sink.lat.merged().TotalCount(); n != 41 {
		t.Errorf("%d latencies, want 41", n)
	}
	select {
	case p := <-pong:
		if p != "are you there" {
			t.Errorf("pong %q", p)
		}
	case <-time.After(time.Second):
		t.Error("no pong")
	}
}

func TestClownSubscriberRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := connectClown(ctx, "ws://"+strings.TrimPrefix(srv.URL, "http://")+"/ws", clownConfig{Subscribe: []string{"#"}}, 16<<10, newTestState())
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("err %v, want the 403", err)
	}
}

func TestOnlyLoopback(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"10.0.0.1:80", "192.168.1.1:1883", "example.com:80", "8.8.8.8:53", "[2001:db8::1]:80"} {
		if err := checkLoopback(a); !errors.Is(err, errNotLoopback) {
			t.Errorf("checkLoopback(%s) = %v, want refused", a, err)
		}
	}
	for _, a := range []string{"127.0.0.1:80", "127.1.2.3:1", "[::1]:80", "localhost:8080"} {
		if err := checkLoopback(a); err != nil {
			t.Errorf("checkLoopback(%s) = %v", a, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := dialWS(ctx, "ws://10.1.2.3:80/ws", nil, 0); !errors.Is(err, errNotLoopback) {
		t.Errorf("dialWS to 10.1.2.3: %v", err)
	}
}

func TestSSESubscriber(t *testing.T) {
	t.Parallel()
	var served atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("filter") != "bench/#" {
			t.Errorf("filter %q", r.URL.Query().Get("filter"))
		}
		served.Store(true)
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fmt.Fprint(w, "retry: 2000\n\nid: e-0\n\n")
		fl.Flush()
		now := time.Now().UnixNano()
		for s := uint64(1); s <= 20; s++ {
			fmt.Fprintf(w, "id: e-%d\ndata: [\"bench/t\",%s]\n\n", s, appendBenchPayload(nil, s, now, 100))
			if s%7 == 0 {
				fmt.Fprint(w, ": keep-alive\n\n")
				fl.Flush()
			}
		}
		fmt.Fprint(w, "event: close\ndata: {\"reason\":\"going away\"}\n\n")
	}))
	defer srv.Close()
	st := newTestState()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := connectSSE(ctx, srv.URL+"/events?filter="+urlQueryEscape("bench/#"), st)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.read(); err == nil {
		t.Error("read returned nil at the end of the stream")
	}
	if st.seq.received != 20 || st.sink.others.Load() != 1 { // the close event's data is not a bench message
		t.Errorf("received %d others %d, want 20 and 1", st.seq.received, st.sink.others.Load())
	}
}
