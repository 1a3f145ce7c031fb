package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// clownHubUsers writes a users file with the Clown.Talk article's user
// (clown, password bigclown) who may read and write nodes/#, a device user
// for the test's own MQTT client, and an anonymous entry that may read
// public/# only.
// clownHubWithDevice starts a hub with clownHubUsers and a relay device
// subscribed to nodes/#, whose messages it returns.
func clownHubWithDevice(t *testing.T) (*runningHub, <-chan hubtest.Message) {
	t.Helper()
	h := startHub(t, "--users", clownHubUsers(t))
	device, err := hubtest.ConnectMQTTAs(h.MQTT, "relay-device", "device", "device-secret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { device.Disconnect(100) })
	return h, hubtest.SubscribeMQTT(t, device, "nodes/#", 1)
}

func clownHubUsers(t *testing.T) string {
	t.Helper()
	content := fmt.Sprintf(`
[users.clown]
password = %q
readwrite = ["nodes/#"]
[users.device]
password = %q
readwrite = ["#"]
[users.anonymous]
read = ["public/#"]
`, hubtest.PasswordHash(t, "bigclown"), hubtest.PasswordHash(t, "device-secret"))
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dialWithURLCredentials opens a WebSocket on a URL that carries a user
// name and password, sending them as HTTP Basic credentials as browsers do:
// gorilla's Dialer refuses such a URL itself (see TestClownHubURL).
func dialWithURLCredentials(rawURL string) (*websocket.Conn, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	header := http.Header{}
	if u.User != nil {
		password, _ := u.User.Password()
		req := http.Request{Header: header}
		req.SetBasicAuth(u.User.Username(), password)
		u.User = nil
	}
	dialer := websocket.Dialer{HandshakeTimeout: hubtest.Timeout, Subprotocols: []string{"clown.talk"}}
	return dialer.Dial(u.String(), header)
}

// TestClownHubURL: a page written for Clown.Hub connects with
// ws://clown:bigclown@HOST/auth/clown-talk-server_nodes_bridge_0 (or the
// same without /auth), and its ["relay/i2c0-3b/set", {"state": false}]
// reaches MQTT nodes/bridge/0/relay/i2c0-3b/set; "__" in the name is an
// underscore in a level; a wrong password is 401.
func TestClownHubURL(t *testing.T) {
	h, commands := clownHubWithDevice(t)

	clownURL := "ws://clown:bigclown@" + h.HTTP + "/auth/clown-talk-server_nodes_bridge_0"
	if _, _, err := websocket.DefaultDialer.Dial(clownURL, nil); err == nil {
		t.Error("gorilla's Dialer took a URL with credentials: README and web/clownhub.go say it refuses them")
	}

	for _, c := range []struct{ path, send, topic string }{
		{"/auth/clown-talk-server_nodes_bridge_0", "relay/i2c0-3b/set", "nodes/bridge/0/relay/i2c0-3b/set"},
		{"/clown-talk-server_nodes_bridge_0", "relay/i2c0-3b/set", "nodes/bridge/0/relay/i2c0-3b/set"},
		{"/auth/clown-talk-server_nodes_living__room", "relay/i2c0-3b/set", "nodes/living_room/relay/i2c0-3b/set"},
		{"/auth/clown-talk-server", "nodes/bridge/1/relay/i2c0-3b/set", "nodes/bridge/1/relay/i2c0-3b/set"}, // the root, like /ws
	} {
		conn, resp, err := dialWithURLCredentials("ws://clown:bigclown@" + h.HTTP + c.path)
		if err != nil {
			t.Fatalf("%s: %v (response %v)", c.path, err, resp)
		}
		ws := hubtest.WrapWS(t, conn)
		ws.Send(`["clown.talk/-/config/set", {}]`)
		ws.Expect("clown.talk/-/config/ok")
		ws.Send(`["` + c.send + `", {"state": false}]`)
		m := hubtest.Receive(t, commands, hubtest.Timeout, "the command on MQTT")
		if m.Topic != c.topic || m.Payload != `{"state":false}` {
			t.Errorf("%s: MQTT got %s %s, want %s {\"state\":false}", c.path, m.Topic, m.Payload, c.topic)
		}
		_ = conn.Close()
	}

	for _, path := range []string{"/auth/clown-talk-server_nodes_bridge_0", "/clown-talk-server_nodes_bridge_0"} {
		_, resp, err := dialWithURLCredentials("ws://clown:wrong-password@" + h.HTTP + path)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %v, response %v; want 401", path, err, resp)
		}
	}
}

// TestClownHubURLInChromium: what Chromium does with the credentials of a
// WebSocket URL. It sends none with the handshake; only a 401 with a Basic
// challenge makes it try again with them. So the /auth form, which asks
// for credentials whenever the hub has a users file, works unchanged; the
// form without /auth, on a hub whose users file has an anonymous entry,
// opens as anonymous, whose publish is refused.
func TestClownHubURLInChromium(t *testing.T) {
	h, commands := clownHubWithDevice(t)

	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/healthz")) // a page of the hub's own origin, needing no login
	open := func(name, path string) {
		t.Helper()
		js := fmt.Sprintf(`(() => {
			const got = window[%[1]q] = [];
			const ws = new WebSocket("ws://clown:bigclown@%[2]s%[3]s", "clown.talk");
			ws.onopen = () => {
				ws.send('["clown.talk/-/config/set", {}]');
				ws.send('["relay/i2c0-3b/set", {"state": false}]');
			};
			ws.onmessage = (e) => e.data.trim().split("\n").forEach((line) => got.push(JSON.parse(line)));
			ws.onclose = (e) => got.push(["closed", e.code]);
			return true;
		})()`, name, h.HTTP, path)
		hubtest.Eval[bool](t, b, js)
	}

	open("withAuth", "/auth/clown-talk-server_nodes_bridge_0")
	m := hubtest.Receive(t, commands, hubtest.Timeout, "the command from Chromium on MQTT")
	if m.Topic != "nodes/bridge/0/relay/i2c0-3b/set" || m.Payload != `{"state":false}` {
		t.Errorf("MQTT got %s %s", m.Topic, m.Payload)
	}

	open("withoutAuth", "/clown-talk-server_nodes_bridge_0")
	b.WaitJS(t, hubtest.Timeout, `withoutAuth.some(([topic]) => topic === "clown.talk/-/error")`, `JSON.stringify(withoutAuth)`)
	var frames [][]json.RawMessage
	if err := json.Unmarshal([]byte(hubtest.Eval[string](t, b, `JSON.stringify(withoutAuth)`)), &frames); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if string(f[0]) == `"clown.talk/-/error"` {
			var e struct{ Code string }
			_ = json.Unmarshal(f[1], &e)
			if e.Code != "forbidden" {
				t.Errorf("without /auth the publish got %s, want forbidden (Chromium connected as anonymous)", f[1])
			}
		}
	}
	select { // the error frame is the refusal: nothing was published before it
	case m := <-commands:
		t.Errorf("the anonymous publish reached MQTT: %s %s", m.Topic, m.Payload)
	default:
	}
}
