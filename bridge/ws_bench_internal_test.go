package bridge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkWebSocketFanOut100 and BenchmarkWebSocketFanOut1000 measure the
// whole delivery path to browsers: a message from the Bus to N real
// WebSocket clients on loopback, through the queues, the writers, gorilla
// and the kernel, until each client has read it. Messages go out in bursts
// of 256, the way a busy publisher fills queues between two drains. The
// clients run in this process, so ns/op includes their reads; they read
// without allocating, so allocs/op are the hub's.
func BenchmarkWebSocketFanOut100(b *testing.B)  { benchWebSocketFanOut(b, 100) }
func BenchmarkWebSocketFanOut1000(b *testing.B) { benchWebSocketFanOut(b, 1000) }

func benchWebSocketFanOut(b *testing.B, n int) {
	h := newTestHub(b, Config{MaxSessionsPerAddress: n})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeWebSocket(w, r, "") }))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	var received atomic.Int64
	var readers sync.WaitGroup
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = conn
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/config/set", {"subscribe": ["nodes/+/thermometer/#"]}]`)); err != nil {
			b.Fatal(err)
		}
		if _, ok, err := conn.ReadMessage(); err != nil || !bytes.Contains(ok, []byte("config/ok")) {
			b.Fatalf("config/set answered %q, %v", ok, err)
		}
		readers.Go(func() { countFrames(conn.UnderlyingConn(), &received) })
	}
	defer func() {
		for _, conn := range conns {
			_ = conn.Close()
		}
		readers.Wait()
	}()

	msg := Message{Topic: "nodes/bridge/thermometer/0:1/temperature", Payload: []byte(`[21.5,"°C"]`)}
	waitFor := func(want int64) {
		deadline := time.Now().Add(30 * time.Second)
		for received.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("clients received %d of %d messages in 30 s", received.Load(), want)
			}
			time.Sleep(50 * time.Microsecond) // a poll between bursts, not a stand-in for synchronisation
		}
	}
	const burst = 256
	sent := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		h.deliver(msg)
		if sent++; sent%burst == 0 {
			waitFor(sent * int64(n))
		}
	}
	waitFor(sent * int64(n))
	perDelivery := float64(b.Elapsed().Nanoseconds()) / float64(sent) / float64(n)
	b.ReportMetric(perDelivery, "ns/delivery")
	b.ReportMetric(1e9/perDelivery, "deliveries/s")
	if s := h.Stats(); s.SlowDisconnects != 0 {
		b.Fatalf("%d clients were cut off as slow", s.SlowDisconnects)
	}
}

// countFrames reads server frames (unmasked, RFC 6455 §5.2) from conn until
// it fails, counting them, without allocating. After the handshake and
// config/ok the hub sends nothing until the benchmark publishes, so
// gorilla's reader holds no buffered bytes when this takes over.
func countFrames(conn net.Conn, n *atomic.Int64) {
	r := bufio.NewReaderSize(conn, 64<<10)
	var header [8]byte
	for {
		if _, err := io.ReadFull(r, header[:2]); err != nil {
			return
		}
		size := int(header[1] & 0x7f)
		switch size {
		case 126:
			if _, err := io.ReadFull(r, header[:2]); err != nil {
				return
			}
			size = int(binary.BigEndian.Uint16(header[:2]))
		case 127:
			if _, err := io.ReadFull(r, header[:8]); err != nil {
				return
			}
			size = int(binary.BigEndian.Uint64(header[:8]))
		}
		if _, err := r.Discard(size); err != nil {
			return
		}
		n.Add(1)
	}
}
