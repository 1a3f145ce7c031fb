package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// deviceMessages are what a device publishes in the golden test: every
// payload rule of the Clown.Talk conversion, on topics inside and outside the
// mounted base nodes/bridge/0.
var deviceMessages = []struct {
	topic   string
	payload []byte
}{
	{"nodes/bridge/0/thermometer/0:1/temperature", []byte("[21.5, \"°C\"]\n")},
	{"nodes/bridge/0/relay/i2c0-3b", []byte(`{ "state" : true }`)},
	{"nodes/bridge/0/asn", []byte(`1234567`)},
	{"nodes/bridge/0/boot", []byte(`mote booted, "fw" 1.2`)},
	{"nodes/bridge/0/raw", []byte{0xff, 0x00, 0x10, 'a'}},
	{"nodes/bridge/0/cleared", nil},
	{"nodes/bridge/0/control\tchars", []byte("line1\nline2\x01")},
	{"nodes/bridge/1/relay/i2c0-3b", []byte(`{"state":false}`)},
	{"nodes/bridge/0", []byte(`"the base itself"`)},
	{"weather/čidlo/°C", []byte(`null`)},
}

// TestDeviceToBrowserGolden: a device's publishes arrive at a root and at a
// mounted WebSocket as exactly the frames in testdata/frames/device-to-browser.golden.
func TestDeviceToBrowserGolden(t *testing.T) {
	h := startHub(t)
	root, rootOK := h.session(t, "/ws", `{}`)
	mounted, _ := h.session(t, "/ws/nodes/bridge/0", `{}`)

	var ok struct {
		Ack       bool     `json:"ack"`
		Device    string   `json:"device"`
		Session   string   `json:"session"`
		Epoch     string   `json:"epoch"`
		Subscribe []string `json:"subscribe"`
	}
	if err := json.Unmarshal(rootOK.Payload, &ok); err != nil {
		t.Fatalf("config/ok payload %s: %v", rootOK.Payload, err)
	}
	if ok.Ack || ok.Device != "hub" || ok.Session == "" || ok.Epoch == "" || len(ok.Subscribe) != 1 || ok.Subscribe[0] != "#" {
		t.Fatalf("config/ok = %s, want ack false, device hub, a session, an epoch, subscribe [#]", rootOK.Payload)
	}

	device := hubtest.ConnectMQTT(t, h.MQTT, "mote-golden")
	for _, m := range deviceMessages {
		hubtest.PublishMQTT(t, device, m.topic, 1, false, m.payload)
	}
	inBase := 0
	for _, m := range deviceMessages {
		if strings.HasPrefix(m.topic, "nodes/bridge/0/") {
			inBase++
		}
	}
	var got strings.Builder
	got.WriteString("# /ws\n")
	for range deviceMessages {
		got.WriteString(root.ReadLine() + "\n")
	}
	got.WriteString("# /ws/nodes/bridge/0\n")
	for range inBase {
		got.WriteString(mounted.ReadLine() + "\n")
	}
	// Nothing else may follow on the mounted session: a marker published
	// after everything else must be the next line.
	hubtest.PublishMQTT(t, device, "nodes/bridge/0/marker", 0, false, []byte("1"))
	if line := mounted.ReadLine(); line != `["marker",1]` {
		t.Fatalf("after the golden messages the mounted client got %s, want the marker", line)
	}
	compareGolden(t, "device-to-browser.golden", got.String())
}

func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "frames", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/hub -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("frames differ from %s\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestBrowserCommandReachesDevice: a relay command on a mounted WebSocket
// reaches an MQTT subscriber at the absolute topic with the compact payload.
func TestBrowserCommandReachesDevice(t *testing.T) {
	h := startHub(t)
	device := hubtest.ConnectMQTT(t, h.MQTT, "relay-mote")
	commands := hubtest.SubscribeMQTT(t, device, "nodes/bridge/0/relay/+/set", 1)

	ws, _ := h.session(t, "/ws/nodes/bridge/0", `{}`)
	ws.Send(`["relay/i2c0-3b/set", {"state": false}]`)

	m := hubtest.Receive(t, commands, hubtest.Timeout, "command at the device")
	if m.Topic != "nodes/bridge/0/relay/i2c0-3b/set" || m.Payload != `{"state":false}` {
		t.Fatalf("device got %q %q, want nodes/bridge/0/relay/i2c0-3b/set {\"state\":false}", m.Topic, m.Payload)
	}
	// The browser sees its own command like any MQTT subscriber of '#' would.
	if f := ws.Expect("relay/i2c0-3b/set"); string(f.Payload) != `{"state":false}` {
		t.Fatalf("echo payload %s", f.Payload)
	}

	// A binary payload survives the round trip through {"$base64": ...}.
	raw := hubtest.SubscribeMQTT(t, device, "nodes/bridge/0/raw/#", 1)
	ws.Send(`["raw/blob", {"$base64": "/wAQ"}]`)
	if m := hubtest.Receive(t, raw, hubtest.Timeout, "binary command"); m.Payload != "\xff\x00\x10" {
		t.Fatalf("binary payload arrived as %q", m.Payload)
	}
}

// TestBadInputAnsweredWithErrorFrames: every kind of bad input gets an error
// frame with its code, and the session goes on working.
func TestBadInputAnsweredWithErrorFrames(t *testing.T) {
	h := startHub(t)
	ws, _ := h.session(t, "/ws", `{}`)

	cases := []struct {
		name, frame, code string
	}{
		{"not JSON", `hello`, "bad-json"},
		{"not an array", `{"topic": "a"}`, "bad-json"},
		{"one element", `["a"]`, "bad-json"},
		{"three elements", `["a", 1, 2]`, "bad-json"},
		{"topic not a string", `[1, 2]`, "bad-json"},
		{"wildcard in topic", `["a/+/b", 1]`, "bad-topic"},
		{"empty topic", `["", 1]`, "bad-topic"},
		{"NUL in topic", `["a\u0000b", 1]`, "bad-topic"},
		{"reserved $ topic", `["$SYS/broker/x", 1]`, "bad-topic"},
		{"unknown control topic", `["clown.talk/-/nope", {}]`, "bad-topic"},
		{"subscribe takes an array", `["clown.talk/-/subscribe", "a/#"]`, "bad-json"},
		{"invalid filter", `["clown.talk/-/subscribe", ["a/#/b"]]`, "bad-topic"},
		{"config/set takes an object", `["clown.talk/-/config/set", [1]]`, "bad-json"},
		{"bad base64", `["a", {"$base64": "%%%"}]`, "bad-json"},
		{"too large", `["big", "` + strings.Repeat("x", 70<<10) + `"]`, "too-large"},
	}
	for _, tc := range cases {
		ws.Send(tc.frame)
		f := ws.Expect("clown.talk/-/error")
		var e struct{ Code, Message string }
		if err := json.Unmarshal(f.Payload, &e); err != nil || e.Code != tc.code || e.Message == "" {
			t.Errorf("%s: error frame %s, want code %q with a message", tc.name, f.Payload, tc.code)
		}
	}

	// Not UTF-8 in a binary frame (which carries lines as a text frame does):
	// answered. In a text frame it fails the connection with 1007 (RFC 6455
	// §8.1; bridge's TestInvalidUTF8TextClosesWith1007).
	if err := ws.Conn.WriteMessage(websocket.BinaryMessage, []byte("[\"a\xff\", 1]")); err != nil {
		t.Fatal(err)
	}
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"bad-json"`) {
		t.Errorf("invalid UTF-8 in a binary frame: error frame %s, want bad-json", f.Payload)
	}

	// Several lines in one frame: the bad one is answered, the good ones are published.
	ws.Send("[\"still/alive\", 1]\nnonsense\n[\"still/alive\", 2]\n")
	if f := ws.Expect("still/alive"); string(f.Payload) != "1" {
		t.Fatalf("first good line arrived as %s", f.Payload)
	}
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"bad-json"`) {
		t.Fatalf("bad line answered with %s", f.Payload)
	}
	if f := ws.Expect("still/alive"); string(f.Payload) != "2" {
		t.Fatalf("second good line arrived as %s", f.Payload)
	}
}

// TestSubscriptions: config/set chooses the filters, subscribe and
// unsubscribe change them, and a client gets each message once even when
// several of its filters match.
func TestSubscriptions(t *testing.T) {
	h := startHub(t)
	device := hubtest.ConnectMQTT(t, h.MQTT, "sub-mote")
	ws, ok := h.session(t, "/ws", `{"subscribe": ["a/#", "a/+", "marker"]}`)
	if !strings.Contains(string(ok.Payload), `"subscribe":["a/#","a/+","marker"]`) {
		t.Fatalf("config/ok %s does not list the filters", ok.Payload)
	}

	for _, topic := range []string{"b/c", "a/b", "a", "marker"} {
		hubtest.PublishMQTT(t, device, topic, 1, false, []byte(`"`+topic+`"`))
	}
	for _, want := range []string{`["a/b","a/b"]`, `["a","a"]`, `["marker","marker"]`} {
		if got := ws.ReadLine(); got != want {
			t.Fatalf("got %s, want %s (b/c must not arrive, a/b must arrive once)", got, want)
		}
	}

	ws.Send(`["clown.talk/-/unsubscribe", ["a/#", "a/+"]]`)
	if f := ws.Expect("clown.talk/-/unsubscribe/ok"); string(f.Payload) != `["a/#","a/+"]` {
		t.Fatalf("unsubscribe/ok payload %s", f.Payload)
	}
	ws.Send(`["clown.talk/-/subscribe", ["b/+"]]`)
	ws.Expect("clown.talk/-/subscribe/ok")
	for _, topic := range []string{"a/b", "b/c", "marker"} {
		hubtest.PublishMQTT(t, device, topic, 1, false, []byte(`"`+topic+`"`))
	}
	for _, want := range []string{`["b/c","b/c"]`, `["marker","marker"]`} {
		if got := ws.ReadLine(); got != want {
			t.Fatalf("after resubscribing got %s, want %s", got, want)
		}
	}
}

// TestIDsAndBatching: with ids each line carries {"id": "<epoch>-<seq>"},
// increasing; with batching several lines may share a frame, all in order.
func TestIDsAndBatching(t *testing.T) {
	h := startHub(t)
	device := hubtest.ConnectMQTT(t, h.MQTT, "ids-mote")
	ws, ok := h.session(t, "/ws", `{"ids": true, "batch": true}`)
	var cfg struct {
		Epoch      string `json:"epoch"`
		IDs, Batch bool
	}
	if err := json.Unmarshal(ok.Payload, &cfg); err != nil || !cfg.IDs || !cfg.Batch {
		t.Fatalf("config/ok %s: want ids and batch on", ok.Payload)
	}

	const n = 200
	for i := range n {
		hubtest.PublishMQTT(t, device, "count", 0, false, []byte(strconv.Itoa(i)))
	}
	idPattern := regexp.MustCompile(`^\{"id":"` + regexp.QuoteMeta(cfg.Epoch) + `-(\d+)"\}$`)
	last := 0
	for i := range n {
		f := hubtest.ParseFrame(t, ws.ReadLine())
		if f.Topic != "count" || string(f.Payload) != strconv.Itoa(i) {
			t.Fatalf("line %d is %s %s", i, f.Topic, f.Payload)
		}
		m := idPattern.FindStringSubmatch(string(f.Meta))
		if m == nil {
			t.Fatalf("line %d meta %s, want {\"id\":\"%s-N\"}", i, f.Meta, cfg.Epoch)
		}
		seq, _ := strconv.Atoi(m[1])
		if seq <= last {
			t.Fatalf("id %d after %d: ids must increase", seq, last)
		}
		last = seq
	}
}

// TestOriginChecked: a page from another origin cannot open the WebSocket
// unless --allow-origin names it; the hub's own origin and non-browser
// clients (no Origin) can.
func TestOriginChecked(t *testing.T) {
	h := startHub(t, "--allow-origin", "https://dashboard.example")
	dial := func(origin string) (*http.Response, error) {
		header := http.Header{}
		if origin != "" {
			header.Set("Origin", origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(h.wsURL("/ws"), header)
		if err == nil {
			_ = conn.Close()
		}
		return resp, err
	}

	resp, err := dial("https://evil.example")
	if err == nil {
		t.Fatal("cross-origin handshake was accepted")
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"code":"forbidden"`) {
		t.Fatalf("cross-origin handshake answered %d %s, want 403 with a JSON forbidden error", resp.StatusCode, body)
	}
	for _, origin := range []string{"", "http://" + h.HTTP, "https://dashboard.example"} {
		if _, err := dial(origin); err != nil {
			t.Errorf("origin %q refused: %v", origin, err)
		}
	}
}

// TestHTTPSurface: health, readiness, JSON errors for unknown routes and
// methods and for a plain GET of /ws, a bad mount base, and the page at /.
func TestHTTPSurface(t *testing.T) {
	h := startHub(t)
	client := &http.Client{Timeout: hubtest.Timeout}
	defer client.CloseIdleConnections()

	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`},
		{"GET", "/readyz", 200, `{"status":"ready"}`},
		{"GET", "/nope", 404, `"code":"not-found"`},
		{"POST", "/healthz", 405, `"code":"bad-method"`},
		{"GET", "/ws", 400, `"code":"bad-request"`},
		{"GET", "/ws/nodes/%2E%2E/x", 400, `"code":"bad-topic"`},
		{"GET", "/ws/nodes/+/x", 400, `"code":"bad-topic"`},
		{"GET", "/ws/a//b", 400, `"code":"bad-topic"`},
		{"GET", "/", 200, `<title>motehub</title>`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://"+h.HTTP+tt.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
			t.Errorf("%s %s = %d %s, want %d containing %s", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
	}
}

// TestShutdownDrains: when the hub is told to stop, browsers get "going
// away", MQTT clients are disconnected, and run returns nil in time.
func TestShutdownDrains(t *testing.T) {
	h := startHub(t)
	ws, _ := h.session(t, "/ws", `{}`)
	device := hubtest.ConnectMQTT(t, h.MQTT, "shutdown-mote")

	start := time.Now()
	if err := h.Stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	_, err := ws.TryReadLine(hubtest.Timeout)
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("browser saw %v, want close 1001 going away", err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return !device.IsConnected() }, "MQTT client still connected")
	if !strings.Contains(h.Log.String(), "msg=stopped") {
		t.Fatalf("no 'stopped' line in the log:\n%s", h.Log.String())
	}
}

// TestRefusesExposedAnonymousListener: without --allow-anonymous the hub will
// not serve anonymous clients on an address other machines can reach.
func TestRefusesExposedAnonymousListener(t *testing.T) {
	for _, args := range [][]string{{"--http", "0.0.0.0:0"}, {"--mqtt", ":1883"}, {"--http", "[::]:0"}} {
		err := run(t.Context(), args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--allow-anonymous") || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("run %v = %v, want a refusal that names --allow-anonymous", args, err)
		}
	}
}

func TestTakenPortFailsClearly(t *testing.T) {
	h := startHub(t)
	err := run(t.Context(), []string{"--http", "127.0.0.1:0", "--mqtt", h.MQTT, "--data", t.TempDir()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen for MQTT on "+h.MQTT) || !strings.Contains(err.Error(), "--mqtt") {
		t.Fatalf("second hub on a taken MQTT port: %v", err)
	}
	err = run(t.Context(), []string{"--http", h.HTTP, "--mqtt", "127.0.0.1:0", "--data", t.TempDir()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen for HTTP on "+h.HTTP) || !strings.Contains(err.Error(), "--http") {
		t.Fatalf("second hub on a taken HTTP port: %v", err)
	}
}

func TestOptions(t *testing.T) {
	env := map[string]string{
		"HUB_HTTP":         "127.0.0.1:9000",
		"HUB_MQTT":         "127.0.0.1:9001",
		"HUB_LOG_LEVEL":    "debug",
		"HUB_ALLOW_ORIGIN": "https://a.example, https://b.example",
		"HUB_ALLOW_HOST":   "hub.lan, 192.168.1.5",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	o, err := parseOptions([]string{"--mqtt", "127.0.0.1:1999"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTPAddr != "127.0.0.1:9000" || o.MQTTAddr != "127.0.0.1:1999" || o.LogLevel.String() != "DEBUG" ||
		fmt.Sprint(o.AllowOrigins) != "[https://a.example https://b.example]" || fmt.Sprint(o.AllowHosts) != "[hub.lan 192.168.1.5]" {
		t.Fatalf("options %+v: want env values, except --mqtt from the flag", o)
	}

	env["HUB_LOG_LEVEL"] = "loud"
	if _, err := parseOptions(nil, lookup, io.Discard); err == nil || !strings.Contains(err.Error(), "HUB_LOG_LEVEL") {
		t.Fatalf("a bad env value must be refused naming the variable, got %v", err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	if _, err := parseOptions([]string{"--max-connections", "20000"}, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "--mqtt-max-sessions") {
		t.Fatalf("more MQTT connections than sessions must be refused naming --mqtt-max-sessions, got %v", err)
	}
	for _, bad := range [][]string{{"--mqtt-max-queued", "70000"}, {"--mqtt-max-subscriptions", "0"}, {"--mqtt-connect-timeout", "0s"}} {
		if _, err := parseOptions(bad, noEnv, io.Discard); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
	for args, want := range map[string]time.Duration{"": 2 * time.Millisecond, "--coalesce-window=5ms": 5 * time.Millisecond, "--coalesce-window=0": -1} {
		o, err := parseOptions(strings.Fields(args), noEnv, io.Discard)
		if got := hubConfig(o, security{}, mqttSide{}, slog.Default()).CoalesceWindow; err != nil || got != want {
			t.Errorf("%q: the hub's coalescing window %v (%v), want %v", args, got, err, want)
		}
	}
	if _, err := parseOptions([]string{"--coalesce-window", "-1ms"}, noEnv, io.Discard); err == nil {
		t.Error("a negative --coalesce-window was accepted")
	}
	if _, err := parseOptions([]string{"--nope"}, lookup, io.Discard); err == nil {
		t.Fatal("an unknown flag must be refused")
	}

	var help strings.Builder
	if _, err := parseOptions([]string{"--help"}, lookup, &help); err != flag.ErrHelp {
		t.Fatalf("--help returned %v", err)
	}
	for _, want := range []string{"Listeners:", "Security:", "--http ADDR", "[HUB_HTTP]", "--allow-origin ORIGIN", "--allow-host NAME", `(default "127.0.0.1:1883")`} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, help.String())
		}
	}
}

// mqttConnect is a raw MQTT 3.1.1 CONNECT (clean session) for client id,
// followed, when subscribe is set, by a SUBSCRIBE to "#".
func mqttConnect(id string, subscribe bool) []byte {
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	if subscribe {
		pkt = append(pkt, 0x82, 6, 0, 1, 0, 1, '#', 0)
	}
	return pkt
}

// TestShutdownWithThousandsOfClients: 2,000 MQTT clients connected, and 20
// that subscribed to everything and stopped reading with full buffers (the
// mochi Close hang), do not keep the hub from stopping within its bound.
func TestShutdownWithThousandsOfClients(t *testing.T) {
	h := startHub(t, "--max-connections-per-address", "5000", "--mqtt-rate-limit", "-1")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range 2020 {
		c, err := net.Dial("tcp", h.MQTT)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns = append(conns, c)
		subscribe := i >= 2000
		if _, err := c.Write(mqttConnect(fmt.Sprintf("c%04d", i), subscribe)); err != nil {
			t.Fatal(err)
		}
		// CONNACK (4 bytes), and SUBACK (5) for a subscriber: then it is in.
		ack := make([]byte, 4)
		if subscribe {
			ack = make([]byte, 9)
		}
		_ = c.SetReadDeadline(time.Now().Add(hubtest.Timeout))
		if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("client %d: acknowledgement % x, %v", i, ack, err)
		}
	}

	device := hubtest.ConnectMQTT(t, h.MQTT, "flooder")
	payload := bytes.Repeat([]byte("x"), 32<<10)
	for range 200 { // ~6 MiB each to the stuck clients: more than their socket buffers take
		hubtest.PublishMQTT(t, device, "flood", 0, false, payload)
	}

	start := time.Now()
	if err := h.Stop(); err != nil && !strings.Contains(err.Error(), "cut off") {
		t.Fatalf("run returned %v", err)
	}
	took := time.Since(start)
	if took > 10*time.Second {
		t.Fatalf("shutdown with 2,020 clients, 20 of them stuck, took %v", took)
	}
	t.Logf("shutdown with 2,020 MQTT clients (20 stuck) took %v", took.Round(time.Millisecond))
}
