package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"

	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// realHub is a hub on the real embedded broker, served by httptest.
type realHub struct {
	Hub    *bridge.Hub
	Broker *broker.Embedded
	URL    string // ws://.../ws
	HTTP   string // http://host:port
}

// routes serves /ws[/base] and /events[/base] as package web does.
func routes(hub *bridge.Hub) http.Handler {
	base := func(path, prefix string) string {
		return strings.Trim(strings.TrimPrefix(path, prefix), "/")
	}
	mux := http.NewServeMux()
	ws := func(w http.ResponseWriter, r *http.Request) { hub.ServeWebSocket(w, r, base(r.URL.Path, "/ws")) }
	ev := func(w http.ResponseWriter, r *http.Request) { hub.ServeEvents(w, r, base(r.URL.Path, "/events")) }
	mux.HandleFunc("/ws", ws)
	mux.HandleFunc("/ws/", ws)
	mux.HandleFunc("/events", ev)
	mux.HandleFunc("/events/", ev)
	return mux
}

func startRealHub(t *testing.T, cfg bridge.Config) *realHub {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = log
	hub, err := bridge.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Open()
	srv := httptest.NewServer(routes(hub))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hub.Close(ctx); err != nil {
			t.Errorf("hub close: %v", err)
		}
		srv.Close()
		if err := b.Close(ctx); err != nil {
			t.Errorf("broker close: %v", err)
		}
	})
	return &realHub{Hub: hub, Broker: b, URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", HTTP: srv.URL}
}

// TestSlowClientIsDisconnectedOthersGetEverything: a browser that stops
// reading is cut off as slow (close 4008) once its queue overflows, while a
// healthy browser on the same topic receives every message in order, before
// and after, and the publisher is never held up.
func TestSlowClientIsDisconnectedOthersGetEverything(t *testing.T) {
	h := startRealHub(t, bridge.Config{QueueMessages: 256, QueueBytes: 256 << 10})

	healthy := hubtest.DialWS(t, h.URL, nil)
	healthy.Send(`["clown.talk/-/config/set", {"subscribe": ["feed"]}]`)
	healthy.Expect("clown.talk/-/config/ok")

	// The stalled client reads nothing after its handshake.
	stalled, _, err := websocket.DefaultDialer.Dial(h.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if err := stalled.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/config/set", {"subscribe": ["feed"]}]`)); err != nil {
		t.Fatal(err)
	}

	device := hubtest.ConnectMQTT(t, h.Broker.Addr().String(), "slow-test-device")
	payload := strings.Repeat("x", 4000)
	seq := 0
	publishAndCheck := func(n int) {
		t.Helper()
		for range n {
			hubtest.PublishMQTT(t, device, "feed", 1, false, fmt.Appendf(nil, `{"seq":%d,"pad":"%s"}`, seq+1, payload))
			seq++
		}
		for i := seq - n + 1; i <= seq; i++ {
			want := fmt.Sprintf(`["feed",{"seq":%d,"pad":"%s"}]`, i, payload)
			if got := healthy.ReadLine(); got != want {
				t.Fatalf("healthy client: got %.40s…, want seq %d", got, i)
			}
		}
	}

	// Publish in rounds the healthy client keeps up with, until the stalled
	// one has overflowed (its socket buffers fill first, then its queue).
	const maxMessages = 20000
	for h.Hub.Stats().SlowDisconnects == 0 && seq < maxMessages {
		publishAndCheck(32)
	}
	if got := h.Hub.Stats().SlowDisconnects; got != 1 {
		t.Fatalf("after %d messages of %d bytes: %d slow disconnects, want 1", seq, len(payload), got)
	}
	publishAndCheck(64) // the healthy client goes on undisturbed

	// The stalled client, reading at last, finds its connection ended.
	_ = stalled.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	var readErr error
	for range maxMessages + 1 {
		if _, _, readErr = stalled.ReadMessage(); readErr != nil {
			break
		}
	}
	if readErr == nil || isTimeout(readErr) {
		t.Fatalf("stalled client still connected after being cut off: %v", readErr)
	}
	if ce, ok := readErr.(*websocket.CloseError); ok && ce.Code != 4008 {
		t.Fatalf("stalled client closed with %d %q, want 4008 slow", ce.Code, ce.Text)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 1 },
		"the slow session was not removed: %d sessions", h.Hub.Stats().Sessions)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSlowClientReadingLateGetsReason: a client that is slow but still
// reading is told why with close code 4008 "slow".
func TestSlowClientReadingLateGetsReason(t *testing.T) {
	h := startRealHub(t, bridge.Config{QueueMessages: 8})
	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["burst"]}]`)
	ws.Expect("clown.talk/-/config/ok")

	// Inline publishes fan out faster than any writer drains: the queue of 8
	// overflows within the burst.
	for i := range 10000 {
		if err := h.Broker.Publish(t.Context(), bridge.Message{Topic: "burst", Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
		if h.Hub.Stats().SlowDisconnects > 0 {
			break
		}
	}
	if h.Hub.Stats().SlowDisconnects != 1 {
		t.Fatal("a burst of 10,000 messages did not overflow a queue of 8")
	}
	var err error
	for range 10001 {
		if _, err = ws.TryReadLine(hubtest.Timeout); err != nil {
			break
		}
	}
	if !websocket.IsCloseError(err, 4008) {
		t.Fatalf("slow client saw %v, want close 4008 slow", err)
	}
}

// TestKeepalive: the hub pings; a client that answers (any reading client
// does) stays connected past the pong wait, and one that has gone silent is
// closed as idle.
func TestKeepalive(t *testing.T) {
	// Pings go out at 3/4 of the pong wait: two seconds leave an answer
	// 500 ms, less the watchdog's tick (200 ms) by which a ping may be late.
	const pongWait = 2 * time.Second
	h := startRealHub(t, bridge.Config{PongWait: pongWait})

	alive, _, err := websocket.DefaultDialer.Dial(h.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	lines := make(chan string, 16)
	readerDone := make(chan struct{})
	go func() { // reading makes gorilla answer the hub's pings
		defer close(readerDone)
		for {
			_, data, err := alive.ReadMessage()
			if err != nil {
				return
			}
			lines <- string(data)
		}
	}()
	defer func() { _ = alive.Close(); <-readerDone }()

	silent, _, err := websocket.DefaultDialer.Dial(h.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// Both sessions first: reading the silent client before its session is
	// there would make it answer pings.
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 2 }, "sessions did not open")
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 1 },
		"the silent client was not closed: %d sessions", h.Hub.Stats().Sessions)
	_ = silent.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	if _, _, err := silent.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) || !strings.Contains(err.Error(), "idle timeout") {
		t.Fatalf("silent client saw %v, want close 1001 idle timeout", err)
	}

	// The answering client stays for several more pong waits, and gets messages.
	for until := time.Now().Add(2 * pongWait); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
		if n := h.Hub.Stats().Sessions; n != 1 {
			t.Fatalf("the answering client was closed too: %d sessions", n)
		}
	}
	if err := h.Broker.Publish(t.Context(), bridge.Message{Topic: "still/here", Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if got := hubtest.Receive(t, lines, hubtest.Timeout, "message on the answering client"); got != "[\"still/here\",1]\n" {
		t.Fatalf("answering client got %q", got)
	}
}

// TestRepeatedRetainedReadingsAreEvents: a device that publishes the same
// retained reading again (a thermometer on a steady day) makes a new event
// each time, for browsers and for the history; only the broker's replays
// of a value the hub already has are not new.
func TestRepeatedRetainedReadingsAreEvents(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	ws := hubtest.DialWS(t, h.URL, nil)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["thermo/#"]}]`)
	ws.Expect("clown.talk/-/config/ok")

	device := hubtest.ConnectMQTT(t, h.Broker.Addr().String(), "steady-thermometer")
	for range 3 {
		hubtest.PublishMQTT(t, device, "thermo/t", 1, true, []byte(`[21.5,"°C"]`))
	}
	for i := range 3 {
		if got := ws.ReadLine(); got != `["thermo/t",[21.5,"°C"]]` {
			t.Fatalf("reading %d arrived as %s", i+1, got)
		}
	}
	history, err := h.Hub.History(auth.Anonymous, "thermo/t", 10)
	if err != nil || len(history) != 3 {
		t.Fatalf("history of thermo/t: %d values, %v; want 3", len(history), err)
	}
}

// TestConcurrentHandshakesKeepThePerAddressLimit: handshakes under way at
// once cannot together pass the limit of sessions per address. Each is either
// refused with 429 before the upgrade, or becomes a session that works; none
// is accepted and then closed (a 101 followed by 1013).
func TestConcurrentHandshakesKeepThePerAddressLimit(t *testing.T) {
	const limit, dials = 3, 24
	h := startRealHub(t, bridge.Config{MaxSessionsPerAddress: limit})
	for round := range 5 {
		var wg sync.WaitGroup
		conns := make(chan *websocket.Conn, dials)
		refused := make(chan int, dials)
		for range dials {
			wg.Go(func() {
				d := websocket.Dialer{HandshakeTimeout: hubtest.Timeout}
				conn, resp, err := d.Dial(h.URL, nil)
				if err != nil {
					status := 0
					if resp != nil {
						status = resp.StatusCode
						resp.Body.Close()
					}
					refused <- status
					return
				}
				conns <- conn
			})
		}
		wg.Wait()
		close(conns)
		close(refused)
		var open []*hubtest.WS
		for conn := range conns {
			open = append(open, hubtest.WrapWS(t, conn))
		}
		for status := range refused {
			if status != http.StatusTooManyRequests {
				t.Fatalf("round %d: a handshake refused with status %d, want 429", round, status)
			}
		}
		if len(open) != limit {
			t.Fatalf("round %d: %d of %d handshakes accepted, want the limit, %d", round, len(open), dials, limit)
		}
		for _, ws := range open {
			ws.Send(`["clown.talk/-/config/set", {}]`)
			ws.Expect("clown.talk/-/config/ok") // a session, not a 101 before a close
		}
		for _, ws := range open {
			_ = ws.Conn.Close()
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().Sessions == 0 },
			"round %d: the sessions end when their clients go", round)
	}
}

// TestConfigOKNamesTheHubsRun: config/ok's "boot" is the same for every
// session of one hub and another for another hub (a restart), even with
// the same epoch: what lets a page that lost the hub's close frame know
// that the hub restarted.
func TestConfigOKNamesTheHubsRun(t *testing.T) {
	boot := func(h *realHub) string {
		t.Helper()
		ws := hubtest.DialWS(t, h.URL, nil)
		ws.Send(`["clown.talk/-/config/set", {}]`)
		var ok struct{ Boot, Epoch string }
		if err := json.Unmarshal(ws.Expect("clown.talk/-/config/ok").Payload, &ok); err != nil {
			t.Fatal(err)
		}
		if ok.Boot == "" || ok.Epoch != "same-epoch" {
			t.Fatalf("config/ok: boot %q, epoch %q; want a boot, and the epoch given", ok.Boot, ok.Epoch)
		}
		return ok.Boot
	}
	first := startRealHub(t, bridge.Config{Epoch: "same-epoch"})
	if a, b := boot(first), boot(first); a != b {
		t.Fatalf("two sessions of one hub were told boots %q and %q", a, b)
	}
	second := startRealHub(t, bridge.Config{Epoch: "same-epoch"})
	if a, b := boot(first), boot(second); a == b {
		t.Fatalf("two hubs were both told boot %q", a)
	}
}
