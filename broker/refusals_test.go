package broker

import (
	"bufio"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/refusals"
)

// TestRefusedConnectsAreLogged: each refused CONNECT, whether the hook or
// mochi refuses it, is one WARN line with the door, the address, the user it
// claimed, the reason and the code; never the password.
func TestRefusedConnectsAreLogged(t *testing.T) {
	var logs hubtest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// Every refusal comes from 127.0.0.1: more lines than the default five.
	refused := refusals.New(refusals.Config{Logger: log, PerAddress: 100})
	defer refused.Close()
	e, _, _ := securedBroker(t, Config{Logger: log, Refusals: refused})
	addr := e.Addr().String()
	const password = "not-alices-password"
	if c, connack := dialMQTTConnWith(t, addr, packets.ConnectParams{ClientIdentifier: "held", Clean: true,
		Username: []byte("alice"), Password: []byte("alice-secret")}); connack.ReasonCode != 0 {
		t.Fatalf("alice refused: %#x", connack.ReasonCode)
	} else {
		defer c.conn.Close()
	}

	for _, c := range []struct {
		name    string
		connect packets.ConnectParams
		want    string // the line's attributes after remote=
	}{
		{"wrong password", packets.ConnectParams{ClientIdentifier: "a", Clean: true, Username: []byte("alice"), Password: []byte(password)},
			`user=alice reason="wrong user name, password or token" client=a code="0x86 bad username or password"`},
		{"reserved name", packets.ConnectParams{ClientIdentifier: "b", Clean: true, Username: []byte("anonymous"), Password: []byte(password)},
			`user=anonymous reason="wrong user name, password or token: the name \"anonymous\" is for clients without credentials" client=b`},
		{"Will to $SYS", packets.ConnectParams{ClientIdentifier: "c", Clean: true, Username: []byte("alice"), Password: []byte("alice-secret"),
			WillFlag: true, WillTopic: "$SYS/x", WillPayload: []byte("gone")},
			`user=alice reason="its Will's topic \"$SYS/x\" is not one a client may publish to" client=c code="0x90 topic name invalid"`},
		{"Will not allowed", packets.ConnectParams{ClientIdentifier: "d", Clean: true, Username: []byte("alice"), Password: []byte("alice-secret"),
			WillFlag: true, WillTopic: "other/x", WillPayload: []byte("gone")},
			`user=alice reason="its Will's topic \"other/x\" is not one the user may publish to" client=d code="0x87 not authorized"`},
		{"another user's client id", packets.ConnectParams{ClientIdentifier: "held", Clean: true, Username: []byte("ops"), Password: []byte("ops-secret")},
			`user=ops reason="its client id names another user's session" client=held code="0x85 client identifier not valid"`},
		{"refused by mochi", packets.ConnectParams{ClientIdentifier: "", Clean: false},
			`reason="refused by the broker: unspecified error" code="0x80 unspecified error"`},
	} {
		before := len(logs.String())
		sendConnect(t, addr, c.connect) // refused: the CONNACK (if MQTT 3.1.1 has the code) is not read
		var line string
		hubtest.Eventually(t, hubtest.Timeout, func() bool {
			line = strings.TrimPrefix(logs.String()[before:], "\n")
			return strings.Contains(line, "msg=refused")
		}, "%s: no line in\n%s", c.name, &logs)
		re := regexp.MustCompile(`level=WARN msg=refused door=mqtt remote=127\.0\.0\.1:\d+ ` + regexp.QuoteMeta(c.want))
		if n := len(regexp.MustCompile(`msg=refused`).FindAllString(line, -1)); n != 1 || !re.MatchString(line) {
			t.Errorf("%s: %d lines\n%s\nwant one matching %s", c.name, n, line, re)
		}
	}
	if strings.Contains(logs.String(), password) || strings.Contains(logs.String(), "alice-secret") {
		t.Errorf("a password in the log:\n%s", logs.String())
	}
}

// sendConnect connects to addr and sends a CONNECT with connect's
// parameters; the connection closes when the test ends.
func sendConnect(t *testing.T, addr string, connect packets.ConnectParams) {
	c := &mqttConn{t: t, conn: rawClient(t, addr, "")}
	c.r = bufio.NewReader(c.conn)
	connect.ProtocolName, connect.Keepalive = []byte("MQTT"), 60
	connect.UsernameFlag, connect.PasswordFlag = len(connect.Username) > 0, len(connect.Password) > 0
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: connect})
}

// TestCrossOriginMQTTOverWebSocketIsLogged: a page of another origin is
// refused (403) with one WARN line that names the door and the origin.
func TestCrossOriginMQTTOverWebSocketIsLogged(t *testing.T) {
	var logs hubtest.LogBuffer
	e := startTest(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv := httptest.NewServer(e.WebSocketHandler(nil))
	defer srv.Close()
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"),
		http.Header{"Origin": {"https://evil.example"}, "Sec-WebSocket-Protocol": {"mqtt"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin handshake: %v %v, want 403", resp, err)
	}
	re := regexp.MustCompile(`level=WARN msg=refused door=mqtt-ws remote=127\.0\.0\.1:\d+ ` +
		`reason="pages from https://evil.example may not use this hub \(see --allow-origin\)" status=403`)
	if n := strings.Count(logs.String(), "msg=refused"); n != 1 || !re.MatchString(logs.String()) {
		t.Fatalf("%d refusal lines, want one matching %s:\n%s", n, re, &logs)
	}
}
