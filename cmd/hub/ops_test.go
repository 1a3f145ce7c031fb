package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hub.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrecedence: a flag wins over its environment variable, which
// wins over the config file; the example in testdata is valid.
func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, `
http = "127.0.0.1:7001"
mqtt = "127.0.0.1:7002"
data = "/from/file"
log-level = "warn"
allow-origin = ["https://file.example"]
allow-host = ["hub.lan", "hub.example"]
rate-limit = 5
`)
	env := map[string]string{"HUB_CONFIG": path, "HUB_MQTT": "127.0.0.1:8002", "HUB_DATA": "/from/env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o, err := parseOptions([]string{"--data", "/from/flag"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTPAddr != "127.0.0.1:7001" || o.MQTTAddr != "127.0.0.1:8002" || o.DataDir != "/from/flag" ||
		o.LogLevel.String() != "WARN" || fmt.Sprint(o.AllowOrigins) != "[https://file.example]" || o.RateLimit != 5 ||
		fmt.Sprint(o.AllowHosts) != "[hub.lan hub.example]" {
		t.Fatalf("options %+v: want http and the rest from the file, mqtt from the environment, data from the flag", o)
	}
	if o, err := parseOptions([]string{"--config", filepath.Join("..", "..", "testdata", "hub.toml")}, func(string) (string, bool) { return "", false }, io.Discard); err != nil || o.LogFormat != "text" || len(o.TrustedProxies) != 1 {
		t.Fatalf("testdata/hub.toml: %+v %v", o, err)
	}
}

// TestConfigRefusesMistakes: every mistake names what is wrong and where.
func TestConfigRefusesMistakes(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for content, want := range map[string][]string{
		`htp = "x"`:                      {`unknown key "htp"`, "hub.toml"},
		`log-level = "loud"`:             {`key "log-level"`, "want debug, info, warn or error"},
		`log-format = "xml"`:             {`key "log-format"`, "want text or json"},
		`http = ["a", "b"]`:              {`key "http" takes one value`},
		"[limits]\nrate-limit = 5":       {"[limits] is a table", "write every key at the top"},
		`rate-limit = "fast"`:            {`key "rate-limit"`},
		`data-sync-interval = "forever"`: {`key "data-sync-interval"`},
		`config = "other.toml"`:          {`unknown key "config"`},
		`http = "127.0.0.1:1" x`:         {"hub.toml"},
		`allow-host = ["hub.lan:8080"]`:  {`key "allow-host"`, "without a port"},
		`allow-host = ["hub.lan/x"]`:     {`key "allow-host"`, "a host name or an IP address"},
	} {
		_, err := parseOptions([]string{"--config", writeConfig(t, content)}, none, io.Discard)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("config %q: %v, want an error mentioning %q", content, err, w)
			}
		}
	}
	if _, err := parseOptions([]string{"--config", "/no/such/hub.toml"}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "/no/such/hub.toml") {
		t.Errorf("a missing config file: %v", err)
	}
	if _, err := parseOptions([]string{"--log-level", "loud"}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "want debug, info, warn or error") {
		t.Errorf("a bad flag value: %v", err)
	}
}

var metricLine = regexp.MustCompile(`^(\w+)(\{[^}]*\})? (\S+)$`)

// scrape reads /metrics into "name{labels}" → value.
func scrape(t *testing.T, httpAddr string) map[string]float64 {
	t.Helper()
	status, _, body := get(t, "GET", "http://"+httpAddr+"/metrics", nil, "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if g := metricLine.FindStringSubmatch(sc.Text()); g != nil {
			v, _ := strconv.ParseFloat(g[3], 64)
			m[g[1]+g[2]] = v
		}
	}
	return m
}

// TestMetricsCountTraffic: after known traffic, each counter of /metrics
// has moved by exactly what happened.
func TestMetricsCountTraffic(t *testing.T) {
	h := startHub(t)
	ws1, _ := h.session(t, "/ws", `{"subscribe": ["m/#"], "ack": true}`)
	ws2, _ := h.session(t, "/ws", `{"subscribe": ["m/#"]}`)
	sse := hubtest.DialSSE(t, "http://"+h.HTTP+"/events?filter=m/%23", nil)
	device := hubtest.ConnectMQTT(t, h.MQTT, "metrics-device")
	commands := hubtest.SubscribeMQTT(t, device, "m/+/set", 1)
	before := scrape(t, h.HTTP)

	for i := range 5 {
		hubtest.PublishMQTT(t, device, "m/x", 1, false, []byte(strconv.Itoa(i)))
	}
	for range 5 {
		ws1.Expect("m/x")
		ws2.Expect("m/x")
		sse.NextMessage(t)
	}
	ws1.Send(`["m/lamp/set", {"on": true}]`)
	hubtest.Receive(t, commands, hubtest.Timeout, "command")
	hubtest.PublishMQTT(t, device, "m/lamp", 1, false, []byte(`{"on":true}`))
	ws1.Expect("clown.talk/-/ack")
	// ws2 has what it was sent before it closes: a write still in flight
	// would fail, and count the close as "write failed".
	ws2.Expect("m/lamp")
	_ = ws2.Conn.Close()
	// 5 messages to 3 sessions; the command and the device's echo to the
	// two WebSockets (m/# matches m/lamp/set and m/lamp) and to SSE.
	exact := map[string]float64{
		`motehub_messages_delivered_total{transport="ws"}`:     5*2 + 2*2,
		`motehub_messages_delivered_total{transport="sse"}`:    5 + 2,
		`motehub_messages_published_total{source="ws"}`:        1,
		`motehub_command_acks_total{outcome="ok"}`:             1,
		`motehub_session_closes_total{reason="client_closed"}`: 1,
	}
	// The counters settle on their own (a closed session leaves the gauge
	// before its close is counted; a delivery is counted after it is
	// queued), so they are read until they agree, never just once.
	var after map[string]float64
	delta := func(name string) float64 { return after[name] - before[name] }
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		after = scrape(t, h.HTTP)
		var wrong []string
		if n := after[`motehub_sessions{transport="ws"}`]; n != 1 {
			wrong = append(wrong, fmt.Sprintf("%v WebSocket sessions counted, want 1: the closed one is still counted", n))
		}
		for name, want := range exact {
			if got := delta(name); got != want {
				wrong = append(wrong, fmt.Sprintf("%s moved by %v, want %v", name, got, want))
			}
		}
		if wrong != nil {
			slices.Sort(wrong)
			return errors.New(strings.Join(wrong, "; "))
		}
		return nil
	})
	if got := delta("motehub_delivery_latency_seconds_count"); got < 5*3 {
		t.Errorf("the latency histogram counted %v deliveries, want at least 15", got)
	}
	for _, name := range []string{`motehub_bytes_sent_total{transport="ws"}`, `motehub_bytes_sent_total{transport="sse"}`,
		"motehub_messages_received_total", `motehub_mqtt_messages_total{direction="received"}`} {
		if delta(name) <= 0 {
			t.Errorf("%s did not move", name)
		}
	}
	if after[`motehub_sessions{transport="sse"}`] != 1 || after[`motehub_mqtt_connections{listener="mqtt"}`] < 1 ||
		after["go_goroutines"] == 0 || after["process_resident_memory_bytes"] == 0 {
		t.Errorf("gauges: sse %v, mqtt connections %v, goroutines %v, rss %v", after[`motehub_sessions{transport="sse"}`],
			after[`motehub_mqtt_connections{listener="mqtt"}`], after["go_goroutines"], after["process_resident_memory_bytes"])
	}
}

// TestLogs: --log-format json writes one JSON object per line; sessions and
// MQTT clients get a line when they come and go, messages get none.
func TestLogs(t *testing.T) {
	h := startHub(t, "--log-format", "json")
	ws, _ := h.session(t, "/ws", `{}`)
	device := hubtest.ConnectMQTT(t, h.MQTT, "log-device")
	for range 20 {
		hubtest.PublishMQTT(t, device, "chatty/topic", 0, false, []byte("1"))
	}
	ws.Expect("chatty/topic")
	_ = ws.Conn.Close()
	device.Disconnect(50)
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return strings.Contains(h.Log.String(), `"msg":"session closed"`) && strings.Contains(h.Log.String(), `"msg":"mqtt client disconnected"`)
	}, "no closing lines:\n%s", h.Log)

	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(h.Log.String()), "\n") {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		if strings.Contains(line, "chatty/topic") {
			t.Fatalf("a message was logged at %s: %s", rec.Level, line)
		}
		seen[rec.Msg] = true
	}
	for _, msg := range []string{"listening", "ready", "session opened", "session closed", "mqtt client connected", "mqtt client disconnected"} {
		if !seen[msg] {
			t.Errorf("no %q line", msg)
		}
	}
	if strings.Contains(h.Log.String(), "motehub is ready") {
		t.Error("the banner is for people: not in JSON logs")
	}
}

func TestVersionAndBanner(t *testing.T) {
	if v := version(); !strings.HasPrefix(v, "motehub ") || !strings.Contains(v, "go1.") {
		t.Fatalf("version() = %q", v)
	}
	h := startHub(t)
	log := h.Log.String()
	for _, want := range []string{"motehub is ready", "dashboard  http://" + h.HTTP + "/", "events     http://" + h.HTTP + "/events",
		"websocket  ws://" + h.HTTP + "/ws", "mqtt       mqtt://" + h.MQTT} {
		if !strings.Contains(log, want) {
			t.Errorf("the banner lacks %q:\n%s", want, log)
		}
	}
	if got := reachable(&fakeAddr{"0.0.0.0:8080"}); got != "localhost:8080" {
		t.Errorf("reachable(0.0.0.0:8080) = %q", got)
	}
}

type fakeAddr struct{ s string }

func (a *fakeAddr) Network() string { return "tcp" }
func (a *fakeAddr) String() string  { return a.s }
