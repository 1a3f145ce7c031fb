package broker

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// BenchmarkIdleDevicesHub: what an idle MQTT device with one subscription
// costs a real hub process (cmd/hub, built from this tree, memory only),
// measured as the growth of its resident set: (RSS with the devices −
// RSS before) / devices, once RSS has settled. The devices connect over
// loopback TCP from this process, which holds at most about 19,000
// sockets under the sandbox's 20,000 open files. Run with -benchtime 1x:
//
//	go test ./broker -run '^$' -bench IdleDevicesHub -benchtime 1x
//
// Reported: RSS-B/device once RSS has settled after the connects, and
// again (RSS-2GC-B/device) after the hub has run two garbage collections
// of its own (an idle hub runs one every two minutes; the stacks its
// readers grew while handling CONNECT and SUBSCRIBE shrink by half at each,
// and the scavenger returns freed memory to the system), at most 5 minutes
// later; the hub's own goroutines/device, heap-B/device and
// stack-B/device from its /metrics at that point; connects/s. GOGC is the
// hub's default unless the environment sets it.
//
// "ws-2000" devices speak MQTT over WebSocket to the hub's /mqtt instead.
func BenchmarkIdleDevicesHub(b *testing.B) {
	bin := buildHub(b)
	for _, run := range []struct {
		n  int
		ws bool
	}{{2000, false}, {19000, false}, {2000, true}} {
		name := "tcp-" + strconv.Itoa(run.n)
		if run.ws {
			name = "ws-" + strconv.Itoa(run.n)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				measureHubIdleDevices(b, bin, run.n, run.ws)
			}
		})
	}
}

// buildHub builds cmd/hub into the benchmark's temporary directory.
func buildHub(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "hub")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/hub").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var (
	hubListening = regexp.MustCompile(`msg=listening proto=mqtt addr=(\S+)`)
	hubHTTP      = regexp.MustCompile(`msg=listening proto=http addr=(\S+)`)
	hubReady     = regexp.MustCompile(`msg=ready`)
)

func measureHubIdleDevices(b *testing.B, bin string, n int, ws bool) {
	limit := strconv.Itoa(n + 100)
	cmd, out, exited := hubtest.StartProcess(b, bin, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", "",
		"--max-connections", limit, "--max-connections-per-address", limit, "--mqtt-max-sessions", limit)
	hubtest.Eventually(b, hubtest.Timeout, func() bool {
		select {
		case err := <-exited:
			b.Fatalf("hub exited: %v\n%s", err, out)
		default:
		}
		return hubReady.MatchString(out.String())
	}, "hub not ready:\n%s", out)
	m, h := hubListening.FindStringSubmatch(out.String()), hubHTTP.FindStringSubmatch(out.String())
	if m == nil || h == nil {
		b.Fatalf("no MQTT or HTTP listening line:\n%s", out)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	before := settledRSS(b, pid)
	metrics0 := hubMetrics(b, h[1])
	dial := func() (net.Conn, error) { return net.Dial("tcp", m[1]) }
	if ws {
		dial = func() (net.Conn, error) { return dialWebSocketDevice("ws://" + h[1] + "/mqtt") }
	}
	conns, rate, err := connectDevices(dial, 0, n, 64)
	defer closeAll(conns)
	if err != nil {
		b.Fatal(err)
	}
	after := settledRSS(b, pid)
	b.ReportMetric(float64(after-before)/float64(n), "RSS-B/device")
	b.ReportMetric(rate, "connects/s")

	gcs := hubMetrics(b, h[1])["go_gc_duration_seconds_count"]
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); {
		if hubMetrics(b, h[1])["go_gc_duration_seconds_count"] >= gcs+2 {
			break
		}
		time.Sleep(time.Second) // the hub's own pace: it collects every two minutes when idle
	}
	after = settledRSS(b, pid)
	metrics1 := hubMetrics(b, h[1])
	perDevice := func(name string) float64 { return (metrics1[name] - metrics0[name]) / float64(n) }
	if g := perDevice("go_goroutines"); g < 0.99 {
		b.Fatalf("%.2f goroutines per device: devices were disconnected while idle", g)
	}
	b.ReportMetric(float64(after-before)/float64(n), "RSS-2GC-B/device")
	b.ReportMetric(float64(after)/(1<<20), "RSS-MB")
	b.ReportMetric(perDevice("go_goroutines"), "goroutines/device")
	b.ReportMetric(perDevice("go_memstats_heap_alloc_bytes"), "heap-B/device")
	b.ReportMetric(perDevice("go_memstats_stack_inuse_bytes"), "stack-B/device")
}

// hubMetrics reads the hub's /metrics: the value of each sample without labels.
func hubMetrics(b *testing.B, addr string) map[string]float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	values := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			values[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return values
}

// settledRSS is process pid's resident set once it has changed by less than
// 1 % over a second (or after 15 s).
func settledRSS(b *testing.B, pid string) int64 {
	const step = 250 * time.Millisecond
	var last []int64
	for range 60 {
		rss, err := rssBytes(pid)
		if err != nil {
			b.Fatal(err)
		}
		last = append(last, rss)
		if k := len(last); k > 4 {
			first := last[k-5]
			if d := rss - first; d*100 < first && -d*100 < first {
				return rss
			}
		}
		time.Sleep(step) // a measurement's pace, not synchronisation
	}
	return last[len(last)-1]
}

// wsDevice is a device's MQTT-over-WebSocket connection, as a net.Conn:
// each Write one binary message, Read the messages' bytes in turn.
type wsDevice struct {
	*websocket.Conn
	r io.Reader // the message being read
}

// dialWebSocketDevice opens an MQTT-over-WebSocket connection to url, with
// small buffers: the device's end is in this process, the hub's is measured.
func dialWebSocketDevice(url string) (net.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, ReadBufferSize: 256, WriteBufferSize: 256}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	return &wsDevice{Conn: ws}, nil
}

func (c *wsDevice) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsDevice) Write(p []byte) (int, error) {
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsDevice) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}
