package hubtest

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"
)

// Timeout is how long a test waits for something that should happen at once.
const Timeout = 10 * time.Second

// Eventually polls cond until it is true, failing the test when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// EventuallyNil polls check until it returns nil, failing the test with its
// last error when timeout passes first. For state that settles by itself
// (counters, gauges, subscriptions): a single read right after something
// else settled may come before it.
func EventuallyNil(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RequireAll reports whether every external dependency must be present
// (HUB_REQUIRE_ALL=1, as `make test` and CI set it).
func RequireAll() bool { return os.Getenv("HUB_REQUIRE_ALL") == "1" }

// RequireCommand returns the path of a program the test needs. When it is
// missing the test is skipped with a loud message, or fails under RequireAll.
func RequireCommand(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	missing(t, fmt.Sprintf("!!! %s is not installed, so this test cannot run. Install it with `apt-get install %s`, or run `make test`, which does.", name, debianPackage))
	return ""
}

// missing skips the test with msg, or fails it under RequireAll.
func missing(t testing.TB, msg string) {
	t.Helper()
	if RequireAll() {
		t.Fatal(msg + " (HUB_REQUIRE_ALL=1: missing dependencies fail)")
	}
	t.Skip(msg)
}

// ConnectMQTT connects a paho client to the broker at addr (host:port) and
// disconnects it when the test ends.
func ConnectMQTT(t testing.TB, addr, clientID string) paho.Client {
	t.Helper()
	c, err := TryConnectMQTT(addr, clientID)
	if err != nil {
		t.Fatalf("MQTT connect to %s as %q: %v", addr, clientID, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TryConnectMQTT connects a paho client without credentials and returns the
// CONNECT's outcome.
func TryConnectMQTT(addr, clientID string) (paho.Client, error) {
	return ConnectMQTTAs(addr, clientID, "", "")
}

// Message is an MQTT message a test client received.
type Message struct {
	Topic   string
	Payload string
	Retain  bool
}

// SubscribeMQTT subscribes c to filter and returns the channel its messages
// arrive on (buffered; a test that lets it fill fails).
func SubscribeMQTT(t testing.TB, c paho.Client, filter string, qos byte) <-chan Message {
	t.Helper()
	ch := make(chan Message, 4096)
	tok := c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) {
		select {
		case ch <- Message{Topic: m.Topic(), Payload: string(m.Payload()), Retain: m.Retained()}:
		default:
			t.Errorf("MQTT test subscriber on %q: buffer full, message on %q lost", filter, m.Topic())
		}
	})
	if !tok.WaitTimeout(Timeout) || tok.Error() != nil {
		t.Fatalf("MQTT subscribe %q: %v", filter, tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()[filter]; code >= 0x80 {
		t.Fatalf("MQTT subscribe %q refused by the broker: SUBACK code %#x", filter, code)
	}
	return ch
}

// PublishMQTT publishes and waits for the broker to take the message.
func PublishMQTT(t testing.TB, c paho.Client, topic string, qos byte, retain bool, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(Timeout) || tok.Error() != nil {
		t.Fatalf("MQTT publish %q: %v", topic, tok.Error())
	}
}

// Receive returns the next message from ch, failing the test after timeout.
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("no %s within %v", what, timeout)
		var zero T
		return zero
	}
}

// WS is a Clown.Talk WebSocket client for tests. It reads line by line, so a
// frame that carries several lines is seen as several lines.
type WS struct {
	t       testing.TB
	Conn    *websocket.Conn
	Resp    *http.Response
	pending []string
}

// DialWS opens a WebSocket to url (ws://...) offering the clown.talk
// subprotocol, and closes it when the test ends.
func DialWS(t testing.TB, url string, header http.Header) *WS {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: Timeout, Subprotocols: []string{"clown.talk"}}
	conn, resp, err := d.Dial(url, header)
	if err != nil {
		t.Fatalf("WebSocket dial %s: %v (response %v)", url, err, resp)
	}
	ws := WrapWS(t, conn)
	ws.Resp = resp
	return ws
}

// WrapWS reads and writes an open WebSocket line by line, and closes it when
// the test ends.
func WrapWS(t testing.TB, conn *websocket.Conn) *WS {
	t.Cleanup(func() { _ = conn.Close() })
	return &WS{t: t, Conn: conn}
}

// Send sends one frame of text.
func (w *WS) Send(frame string) {
	w.t.Helper()
	_ = w.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	if err := w.Conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		w.t.Fatalf("WebSocket send: %v", err)
	}
}

// ReadLine returns the next line the hub sent, without its newline.
func (w *WS) ReadLine() string {
	w.t.Helper()
	line, err := w.TryReadLine(Timeout)
	if err != nil {
		w.t.Fatalf("WebSocket read: %v", err)
	}
	return line
}

// TryReadLine returns the next line, or the error that ended the wait.
func (w *WS) TryReadLine(timeout time.Duration) (string, error) {
	for len(w.pending) == 0 {
		_ = w.Conn.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := w.Conn.ReadMessage()
		if err != nil {
			return "", err
		}
		if !strings.HasSuffix(string(data), "\n") {
			return "", fmt.Errorf("frame %q does not end with a newline", data)
		}
		w.pending = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	line := w.pending[0]
	w.pending = w.pending[1:]
	return line, nil
}

// Frame is a decoded Clown.Talk line.
type Frame struct {
	Topic   string
	Payload json.RawMessage
	Meta    json.RawMessage // the third element, when the session asked for ids
}

// ParseFrame decodes a line, failing the test when it is not [topic, payload(, meta)].
func ParseFrame(t testing.TB, line string) Frame {
	t.Helper()
	var parts []json.RawMessage
	if err := json.Unmarshal([]byte(line), &parts); err != nil || len(parts) < 2 || len(parts) > 3 {
		t.Fatalf("line %q is not a Clown.Talk frame: %v", line, err)
	}
	var f Frame
	if err := json.Unmarshal(parts[0], &f.Topic); err != nil {
		t.Fatalf("line %q: topic is not a string", line)
	}
	f.Payload = parts[1]
	if len(parts) == 3 {
		f.Meta = parts[2]
	}
	return f
}

// Expect reads lines until one on topic arrives and returns it; lines on
// other topics are skipped.
func (w *WS) Expect(topic string) Frame {
	w.t.Helper()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		line, err := w.TryReadLine(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("waiting for a frame on %q: %v", topic, err)
		}
		if f := ParseFrame(w.t, line); f.Topic == topic {
			return f
		}
	}
	w.t.Fatalf("no frame on %q within %v", topic, Timeout)
	return Frame{}
}

// PasswordHash is a bcrypt hash of password at bcrypt's lowest cost, for
// users files in tests (the cost is bcrypt's business, not the test's).
func PasswordHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// ConnectMQTTAs connects with a user name and password and returns the
// outcome of the CONNECT.
func ConnectMQTTAs(addr, clientID, user, password string) (paho.Client, error) {
	return ConnectMQTTWith("tcp://"+addr, clientID, user, password, nil)
}

// ConnectMQTTS connects over TLS.
func ConnectMQTTS(addr, clientID, user, password string, cfg *tls.Config) (paho.Client, error) {
	return ConnectMQTTWith("ssl://"+addr, clientID, user, password, func(o *paho.ClientOptions) { o.SetTLSConfig(cfg) })
}

// ConnectMQTTWebSocket connects over WebSocket (url is ws://host:port/path),
// sending header with the handshake (an Origin, a cookie).
func ConnectMQTTWebSocket(url, clientID, user, password string, header http.Header) (paho.Client, error) {
	return ConnectMQTTWith(url, clientID, user, password, func(o *paho.ClientOptions) { o.SetHTTPHeaders(header) })
}

// ConnectMQTTWith connects to url (tcp://host:port, ssl://, ws://) as the
// others do, with the options changed by set, when not nil: a Will, a
// persistent session.
func ConnectMQTTWith(url, clientID, user, password string, set func(*paho.ClientOptions)) (paho.Client, error) {
	opts := paho.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(password).
		SetProtocolVersion(4). // else paho retries a refused CONNECT as MQTT 3.1
		SetOrderMatters(false).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second)
	if set != nil {
		set(opts)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(Timeout) {
		c.Disconnect(0)
		return nil, fmt.Errorf("no CONNACK within %v", Timeout)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}
