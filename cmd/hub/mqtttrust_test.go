package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
	m5 "github.com/motehub/motehub/internal/mqtt5test"
)

// TestReadOnlyUserCannotCommandThroughAWill: viewer may read everything and
// write nothing. A CONNECT over TCP or over /mqtt with a retained Will on a
// relay's command topic is refused as not authorized, so nothing reaches the
// relay, the browsers or /api/state when the socket drops.
func TestReadOnlyUserCannotCommandThroughAWill(t *testing.T) {
	users, _ := writeUsers(t, false)
	h := startHub(t, "--users", users)
	relay, err := hubtest.ConnectMQTTAs(h.MQTT, "relay", "ops", opsPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Disconnect(0)
	commands := hubtest.SubscribeMQTT(t, relay, "relay/#", 1)

	will := func(o *paho.ClientOptions) { o.SetBinaryWill("relay/door/set", []byte(`{"state":true}`), 1, true) }
	origin := http.Header{"Origin": {"http://" + h.HTTP}}
	for _, url := range []string{"tcp://" + h.MQTT, "ws://" + h.HTTP + "/mqtt"} {
		_, err := hubtest.ConnectMQTTWith(url, "viewer-will", "viewer", viewerPassword, func(o *paho.ClientOptions) {
			will(o)
			o.SetHTTPHeaders(origin)
		})
		if err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Fatalf("%s: a read-only user's CONNECT with a Will on relay/door/set: %v, want not authorized", url, err)
		}
	}
	hubtest.PublishMQTT(t, relay, "relay/marker", 1, false, []byte("1")) // everything before it has arrived
	if m := hubtest.Receive(t, commands, hubtest.Timeout, "the marker"); m.Topic != "relay/marker" {
		t.Fatalf("the relay got %+v: a Will went out", m)
	}
	status, _, body := get(t, "GET", "http://"+h.HTTP+"/api/state?filter=relay/door/%23", http.Header{"Authorization": {basic("ops", opsPassword)}}, "")
	if status != http.StatusOK || strings.Contains(body, "relay/door/set") {
		t.Fatalf("/api/state holds the Will: %s", body)
	}
}

// TestSilentMQTTSocketsAreClosed: with --mqtt-connect-timeout, sockets that
// never send CONNECT are closed in time and counted in /metrics, and the
// devices behind the same address get in again.
func TestSilentMQTTSocketsAreClosed(t *testing.T) {
	h := startHub(t, "--mqtt-connect-timeout", "1s", "--max-connections-per-address", "2")
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", h.MQTT)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	if _, err := hubtest.TryConnectMQTT(h.MQTT, "device"); err == nil {
		t.Fatal("the silent sockets did not count toward the limit: the test proves nothing")
	}
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(hubtest.Timeout))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("a socket without CONNECT: %v, want closed (EOF)", err)
		}
		_ = c.Close()
	}
	// The same over /mqtt: the WebSocket opens, no CONNECT follows.
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial("ws://"+h.HTTP+"/mqtt", http.Header{"Origin": {"http://" + h.HTTP}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("MQTT over WebSocket without CONNECT: %v, want closed by the hub with a close frame", err)
	}
	_ = ws.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		c, err := hubtest.TryConnectMQTT(h.MQTT, "device")
		if err == nil {
			c.Disconnect(0)
		}
		return err == nil
	}, "the device stayed locked out")
	var metrics string
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, _, metrics = get(t, "GET", "http://"+h.HTTP+"/metrics", nil, "")
		return strings.Contains(metrics, `motehub_mqtt_refusals_total{cause="connect_timeout"} 3`)
	}, "/metrics does not count the three connections closed for want of a CONNECT")
}

// TestRetainedMetricAfterARestart: motehub_mqtt_retained_messages counts
// the retained messages a restarted hub holds.
func TestRetainedMetricAfterARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	h := startHub(t, "--data", dir)
	device := hubtest.ConnectMQTT(t, h.MQTT, "device")
	for i := range 20 {
		hubtest.PublishMQTT(t, device, "ret/"+strconv.Itoa(i), 1, true, []byte("v"))
	}
	device.Disconnect(100)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	h = startHub(t, "--data", dir)
	_, _, metrics := get(t, "GET", "http://"+h.HTTP+"/metrics", nil, "")
	if got := regexp.MustCompile(`(?m)^motehub_mqtt_retained_messages (\d+)$`).FindStringSubmatch(metrics); got == nil || got[1] != "20" {
		t.Fatalf("after a restart with 20 retained messages: %s", grepLines(metrics, "motehub_mqtt_retained_messages"))
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestMQTTBoundsFromFlags: the --mqtt-* bounds reach the broker, as an MQTT 5
// client sees them, and each shows in /metrics.
func TestMQTTBoundsFromFlags(t *testing.T) {
	h := startHub(t, "--mqtt-session-expiry", "90s", "--mqtt-max-subscriptions", "2",
		"--mqtt-max-sessions", "2", "--max-connections", "2", "--mqtt-max-queued", "3")
	c, ack := m5.Open(t, h.MQTT, &m5.Connect{ClientID: "v5", Properties: m5.Properties{SessionExpiry: m5.Ptr[uint32](3600)}}, m5.Options{})
	if se := ack.Properties.SessionExpiry; se == nil || *se != 90 {
		t.Fatalf("a session of an hour asked for: CONNACK %s, want a session expiry of 90 s", m5.Describe(ack))
	}
	c.Send(&m5.Subscribe{Subscriptions: []m5.Subscription{{Filter: "a/1", QoS: 1}, {Filter: "a/2", QoS: 1}, {Filter: "a/3", QoS: 1}}})
	if suback := c.ExpectSuback(); fmt.Sprint(suback.Reasons) != fmt.Sprint([]m5.Reason{1, 1, 0x97}) {
		t.Fatalf("3 filters past a cap of 2: SUBACK %v, want [1 1 0x97]", suback.Reasons)
	}
	device := hubtest.ConnectMQTT(t, h.MQTT, "device")
	hubtest.PublishMQTT(t, device, "a/1", 1, false, []byte("x"))
	c.AwaitPublish("a/1")

	metrics := func() string {
		_, _, m := get(t, "GET", "http://"+h.HTTP+"/metrics", nil, "")
		return m
	}
	c.Close() // away: its session keeps 3 messages at most
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return strings.Contains(metrics(), `motehub_mqtt_connections{listener="mqtt"} 1`)
	}, "the v5 client is still connected")
	for range 5 {
		hubtest.PublishMQTT(t, device, "a/2", 1, false, []byte("queued"))
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return strings.Contains(metrics(), `motehub_mqtt_inflight_messages 3`) },
		"the session away does not hold 3 messages")

	// Two sessions kept, the cap: a third client ends the one away.
	m5.Open(t, h.MQTT, &m5.Connect{ClientID: "third", CleanStart: true}, m5.Options{})
	m := metrics()
	for _, want := range []string{
		`motehub_mqtt_refusals_total{cause="subscription_limit"} 1`,
		`motehub_mqtt_messages_total{direction="dropped"} 2`,
		`motehub_mqtt_sessions_ended_total 1`,
		`motehub_mqtt_sessions 2`,
		`motehub_mqtt_inflight_messages 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(m, "motehub_mqtt"))
		}
	}
}

// TestMQTTOverWebSocketBehindAProxy: behind a trusted proxy, the limits
// (and the login throttle) of MQTT over /mqtt count the clients the proxy
// names, not the proxy.
func TestMQTTOverWebSocketBehindAProxy(t *testing.T) {
	h := startHub(t, "--trusted-proxy", "127.0.0.1", "--max-connections-per-address", "1")
	url := "ws://" + h.HTTP + "/mqtt"
	var clients []paho.Client
	for i, client := range []string{"192.0.2.1", "192.0.2.2"} {
		header := http.Header{"Origin": {"http://" + h.HTTP}, "X-Forwarded-For": {client}}
		c, err := hubtest.ConnectMQTTWebSocket(url, fmt.Sprintf("behind-%d", i), "", "", header)
		if err != nil {
			t.Fatalf("the client %s behind the proxy: %v", client, err)
		}
		clients = append(clients, c)
	}
	header := http.Header{"Origin": {"http://" + h.HTTP}, "X-Forwarded-For": {"192.0.2.1"}}
	if _, err := hubtest.ConnectMQTTWebSocket(url, "behind-again", "", "", header); err == nil {
		t.Fatal("a second connection of 192.0.2.1, past its limit of 1, was accepted")
	}
	for _, c := range clients {
		c.Disconnect(0)
	}
}
