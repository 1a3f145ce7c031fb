package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/hubtest"
)

// Users of the security tests: alice reads nodes/# and commands relays;
// viewer reads everything but writes nothing; ops may do everything,
// $SYS included; ci has only an API token; anonymous (when present)
// reads public/#.
const (
	alicePassword  = "alice-secret"
	viewerPassword = "viewer-secret"
	opsPassword    = "ops-secret"
)

// writeUsers writes the users file and returns its path and ci's token.
func writeUsers(t *testing.T, anonymous bool) (path, token string) {
	t.Helper()
	token, tokenHash := auth.NewToken()
	content := fmt.Sprintf(`
[users.alice]
password = %q
read = ["nodes/#"]
write = ["nodes/+/relay/+/set"]
[users.viewer]
password = %q
read = ["#"]
[users.ops]
password = %q
readwrite = ["#", "$SYS/#"]
[users.ci]
tokens = [%q]
write = ["nodes/+/ota"]
`, hubtest.PasswordHash(t, alicePassword), hubtest.PasswordHash(t, viewerPassword), hubtest.PasswordHash(t, opsPassword), tokenHash)
	if anonymous {
		content += "[users.anonymous]\nread = [\"public/#\"]\n"
	}
	path = filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// get sends a request with headers and returns the status, headers and body.
func get(t *testing.T, method, url string, header http.Header, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func errorCode(body string) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

// TestCredentialsRequired: with a users file and no anonymous entry, every
// door but health and the login page asks for credentials, and accepts
// Basic, a Bearer token, or nothing else; guessing is throttled.
func TestCredentialsRequired(t *testing.T) {
	users, token := writeUsers(t, false)
	h := startHub(t, "--users", users)
	base := "http://" + h.HTTP

	status, hdr, body := get(t, "GET", base+"/api/state", nil, "")
	if status != 401 || errorCode(body) != "unauthorized" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no credentials: %d %s %q, want 401 unauthorized with a Basic challenge", status, body, hdr.Get("WWW-Authenticate"))
	}
	if status, hdr, _ := get(t, "GET", base+"/api/state", http.Header{"Sec-Fetch-Mode": {"cors"}}, ""); status != 401 || hdr.Get("WWW-Authenticate") != "" {
		t.Fatalf("a browser's request: %d, challenge %q; want 401 without a challenge (no password dialog)", status, hdr.Get("WWW-Authenticate"))
	}
	if status, hdr, _ := get(t, "GET", base+"/", http.Header{"Accept": {"text/html"}}, ""); status != 303 || hdr.Get("Location") != "/login?next=%2F" {
		t.Fatalf("the dashboard without a login: %d to %q, want a redirect to the login page", status, hdr.Get("Location"))
	}
	if status, _, _ := get(t, "GET", base+"/healthz", nil, ""); status != 200 {
		t.Fatalf("/healthz needs no credentials, got %d", status)
	}
	for _, c := range []struct {
		auth string
		want int
	}{
		{basic("alice", "wrong"), 401},
		{basic("mallory", alicePassword), 401},
		{basic("alice", alicePassword), 200},
		{"Bearer " + token, 200},
		{"Bearer mh_nope", 401},
		{"Digest whatever", 401},
	} {
		if status, _, body := get(t, "GET", base+"/api/state", http.Header{"Authorization": {c.auth}}, ""); status != c.want {
			t.Errorf("Authorization %.30q: %d %s, want %d", c.auth, status, body, c.want)
		}
	}

	if _, resp, err := websocket.DefaultDialer.Dial(h.wsURL("/ws"), nil); err == nil || resp.StatusCode != 401 {
		t.Fatalf("WebSocket without credentials: %v", err)
	}
	ws := hubtest.DialWS(t, h.wsURL("/ws"), http.Header{"Authorization": {basic("alice", alicePassword)}})
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["nodes/#"]}]`)
	ws.Expect("clown.talk/-/config/ok")

	// 10 failures a minute for one name from one address, then even the right password waits.
	for range 10 {
		get(t, "GET", base+"/api/state", http.Header{"Authorization": {basic("viewer", "guess")}}, "")
	}
	status, hdr, body = get(t, "GET", base+"/api/state", http.Header{"Authorization": {basic("viewer", viewerPassword)}}, "")
	if status != 429 || hdr.Get("Retry-After") == "" || errorCode(body) != "rate-limited" {
		t.Fatalf("after 10 failures: %d %s, want 429 rate-limited with Retry-After", status, body)
	}
}

// TestLoginPage: the dashboard's login sets a session cookie (HttpOnly,
// SameSite=Strict) that opens the API, the WebSocket and SSE without
// credentials in URLs; logging out closes them again.
func TestLoginPage(t *testing.T) {
	users, _ := writeUsers(t, false)
	h := startHub(t, "--users", users)
	base := "http://" + h.HTTP
	form := func(user, password, next string) string {
		return url.Values{"user": {user}, "password": {password}, "next": {next}}.Encode()
	}
	formHeader := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

	if status, _, body := get(t, "GET", base+"/login", nil, ""); status != 200 || !strings.Contains(body, `name="password"`) {
		t.Fatalf("GET /login: %d", status)
	}
	if status, _, body := get(t, "POST", base+"/login", formHeader, form("alice", "wrong", "/")); status != 401 || !strings.Contains(body, "Wrong user name or password") {
		t.Fatalf("a wrong password: %d", status)
	}
	evil := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"https://evil.example"}}
	if status, _, _ := get(t, "POST", base+"/login", evil, form("alice", alicePassword, "/")); status != 403 {
		t.Fatalf("a login posted from another site: %d, want 403", status)
	}
	status, hdr, _ := get(t, "POST", base+"/login", formHeader, form("alice", alicePassword, "//evil.example/"))
	cookie := hdr.Get("Set-Cookie")
	if status != 303 || hdr.Get("Location") != "/" || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Fatalf("login: %d to %q, cookie %q; want a redirect to / (not to another site) with an HttpOnly SameSite=Strict cookie", status, hdr.Get("Location"), cookie)
	}
	session := http.Header{"Cookie": {strings.Split(cookie, ";")[0]}}

	if status, _, body := get(t, "GET", base+"/api/state?filter=nodes/%23", session, ""); status != 200 {
		t.Fatalf("the API with the session: %d %s", status, body)
	}
	wsHeader := http.Header{"Cookie": session["Cookie"], "Origin": {"http://" + h.HTTP}}
	ws := hubtest.DialWS(t, h.wsURL("/ws"), wsHeader)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["nodes/#"]}]`)
	ws.Expect("clown.talk/-/config/ok")
	hubtest.DialSSE(t, base+"/events?filter=nodes/%23", session)

	if status, _, _ := get(t, "POST", base+"/logout", session, ""); status != 303 {
		t.Fatalf("logout: %d", status)
	}
	if status, _, _ := get(t, "GET", base+"/api/state", session, ""); status != 401 {
		t.Fatalf("the session after logging out: %d, want 401", status)
	}
}

// TestOneDecisionForEveryDoor: what a user may read and publish is the same
// over the WebSocket, SSE, the REST API, the long poll and MQTT.
func TestOneDecisionForEveryDoor(t *testing.T) {
	users, _ := writeUsers(t, true)
	h := startHub(t, "--users", users)
	base := "http://" + h.HTTP
	ops, err := hubtest.ConnectMQTTAs(h.MQTT, "ops", "ops", opsPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Disconnect(0)
	everything := hubtest.SubscribeMQTT(t, ops, "#", 1)

	alice := hubtest.DialWS(t, h.wsURL("/ws"), http.Header{"Authorization": {basic("alice", alicePassword)}})
	alice.Send(`["clown.talk/-/config/set", {"subscribe": ["#"]}]`) // allowed: it overlaps nodes/#
	alice.Expect("clown.talk/-/config/ok")
	anon := hubtest.DialSSE(t, base+"/events?filter=%23", nil)

	for _, topic := range []string{"other/secret", "public/news", "nodes/m1/asn"} {
		hubtest.PublishMQTT(t, ops, topic, 1, false, []byte(`"`+topic+`"`))
	}
	if line := alice.ReadLine(); line != `["nodes/m1/asn","nodes/m1/asn"]` {
		t.Fatalf("alice's '#' delivered %s first; only nodes/ is hers", line)
	}
	if ev := anon.NextMessage(t); ev.Data != `["public/news","public/news"]` {
		t.Fatalf("anonymous '#' stream delivered %s first; only public/ is theirs", ev.Data)
	}
	for range 3 {
		hubtest.Receive(t, everything, hubtest.Timeout, "ops's copies")
	}

	// alice may command relays, and nothing else.
	alice.Send(`["nodes/m1/led/-/state/set", true]`)
	if f := alice.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"forbidden"`) {
		t.Fatalf("alice publishing to an LED: %s, want forbidden", f.Payload)
	}
	alice.Send(`["nodes/m1/relay/r/set", {"state": true}]`)
	if m := hubtest.Receive(t, everything, hubtest.Timeout, "alice's command"); m.Topic != "nodes/m1/relay/r/set" {
		t.Fatalf("the first message to reach MQTT is %q: the forbidden publish got through", m.Topic)
	}
	alice.Send(`["clown.talk/-/subscribe", ["other/#"]]`)
	if f := alice.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"forbidden"`) {
		t.Fatalf("alice subscribing to other/#: %s", f.Payload)
	}
	alice.Send(`["clown.talk/-/state/get", {"filter": "$SYS/#"}]`)
	if f := alice.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"forbidden"`) {
		t.Fatalf("alice asking for $SYS: %s", f.Payload)
	}

	opsAuth := http.Header{"Authorization": {basic("ops", opsPassword)}}
	if status, _, body := get(t, "GET", base+"/api/state?filter=$SYS/%23", opsAuth, ""); status != 200 || !strings.Contains(body, `"$SYS/broker/`) {
		t.Fatalf("ops reading $SYS: %d %.200s", status, body)
	}
	viewer := http.Header{"Authorization": {basic("viewer", viewerPassword)}, "Content-Type": {"application/json"}}
	if status, _, body := get(t, "POST", base+"/api/publish", viewer, `["nodes/m1/relay/r/set", {"state": false}]`); status != 403 || errorCode(body) != "forbidden" {
		t.Fatalf("a read-only user publishing: %d %s", status, body)
	}
	for path, want := range map[string]int{
		"/api/history?topic=nodes/m1/asn":   403,
		"/api/history?topic=public/news":    200,
		"/api/poll?wait=0&filter=nodes/%23": 403,
		"/api/state?filter=nodes/%23":       200, // allowed, and empty: nothing there is theirs
	} {
		if status, _, body := get(t, "GET", base+path, nil, ""); status != want || (path == "/api/state?filter=nodes/%23" && strings.Contains(body, "nodes/")) {
			t.Errorf("anonymous GET %s: %d %s, want %d", path, status, body, want)
		}
	}
	if status, _, body := get(t, "GET", base+"/metrics", nil, ""); status != 401 || errorCode(body) != "unauthorized" {
		t.Errorf("anonymous GET /metrics: %d %.100s, want 401: counters are for known users", status, body)
	}
	if status, _, body := get(t, "GET", base+"/metrics", http.Header{"Authorization": {basic("viewer", viewerPassword)}}, ""); status != 200 || !strings.Contains(body, "motehub_sessions") {
		t.Errorf("a user's GET /metrics: %d %.100s", status, body)
	}
	if _, err := hubtest.TryDialSSE(base+"/events?filter=nodes/%23", nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("an anonymous stream of nodes/#: %v, want 403", err)
	}
	hubtest.PublishMQTT(t, ops, "nodes/m1/marker", 1, false, []byte("1"))
	if m := hubtest.Receive(t, everything, hubtest.Timeout, "marker"); m.Topic != "nodes/m1/marker" {
		t.Fatalf("before the marker MQTT saw %q: the viewer's publish got through", m.Topic)
	}
}

// TestHostileInput: what a hostile client can send gets a clear answer and
// hurts nobody: escaping the mount base, deep JSON, floods, slow headers,
// too many sessions.
func TestHostileInput(t *testing.T) {
	h := startHub(t, "--rate-limit", "5", "--read-header-timeout", "300ms")

	raw := func(path string) string {
		conn, err := net.Dial("tcp", h.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(hubtest.Timeout))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, h.HTTP)
		status, _ := bufio.NewReader(conn).ReadString('\n')
		return strings.TrimSpace(status)
	}
	for _, path := range []string{"/ws/../secret", "/ws/nodes/..%2F..%2Fsecret", "/ws/%2e%2e/x", "/ws/nodes/%23", "/ws/a%2F%2Fb", "/events/nodes/+/x"} {
		if status := raw(path); !strings.Contains(status, "400") {
			t.Errorf("GET %s answered %q, want 400", path, status)
		}
	}

	ws, _ := h.session(t, "/ws", `{}`)
	ws.Send(strings.Repeat("[", 20000) + strings.Repeat("]", 20000))
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"bad-json"`) {
		t.Fatalf("deeply nested JSON: %s", f.Payload)
	}

	// Past the rate: messages dropped, one error a second; far past it: closed.
	ws.Send(strings.Repeat("[\"flood\", 1]\n", 30))
	if f := ws.Expect("clown.talk/-/error"); !strings.Contains(string(f.Payload), `"code":"rate-limited"`) {
		t.Fatalf("past the rate limit: %s", f.Payload)
	}
	ws.Send(strings.Repeat("[\"flood\", 1]\n", 1200))
	var err error
	for range 100 {
		if _, err = ws.TryReadLine(hubtest.Timeout); err != nil {
			break
		}
	}
	if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("a flood: %v, want close 1008", err)
	}

	// Slowloris: headers that never end are cut off.
	conn, err := net.Dial("tcp", h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	start := time.Now()
	reply, _ := io.ReadAll(conn)
	if time.Since(start) > 5*time.Second {
		t.Fatalf("a client that never finished its headers was kept %v", time.Since(start))
	}
	t.Logf("slow headers: connection ended after %v with %q", time.Since(start).Round(time.Millisecond), strings.SplitN(string(reply), "\r\n", 2)[0])
}

// TestSessionsPerAddress: past --max-connections-per-address, a WebSocket or
// SSE session is refused with 429.
func TestSessionsPerAddress(t *testing.T) {
	h := startHub(t, "--max-connections-per-address", "3")
	hubtest.DialWS(t, h.wsURL("/ws"), nil)
	hubtest.DialWS(t, h.wsURL("/ws"), nil)
	hubtest.DialSSE(t, "http://"+h.HTTP+"/events", nil)
	_, resp, err := websocket.DefaultDialer.Dial(h.wsURL("/ws"), nil)
	if err == nil || resp.StatusCode != 429 {
		t.Fatalf("a fourth WebSocket from one address: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if errorCode(string(body)) != "limit" {
		t.Fatalf("refused with %s, want a JSON limit error", body)
	}
	resp, err = http.Get("http://" + h.HTTP + "/events")
	if err != nil || resp.StatusCode != 429 {
		t.Fatalf("a fourth stream from one address: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	// An EventSource is told to come back later instead (a 429 would end it for good).
	s := hubtest.DialSSE(t, "http://"+h.HTTP+"/events", nil)
	for {
		ev, err := s.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("a fourth EventSource from one address: %v before event: close", err)
		}
		if ev.Event == "close" {
			break
		}
	}
}

// TestTLS: HTTPS, WSS and MQTTS with a certificate, with real clients; the
// session cookie is Secure over TLS.
func TestTLS(t *testing.T) {
	certs := hubtest.NewTLSFiles(t, 1)
	users, _ := writeUsers(t, true)
	h := startHub(t, "--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile, "--mqtts", "127.0.0.1:0", "--users", users)
	var mqtts string
	for _, m := range listeningLine.FindAllStringSubmatch(h.Log.String(), -1) {
		if m[1] == "mqtts" {
			mqtts = m[2]
		}
	}
	if mqtts == "" || !strings.Contains(h.Log.String(), "proto=https") {
		t.Fatalf("no https and mqtts listening lines:\n%s", h.Log.String())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientConfig()}, Timeout: hubtest.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + h.HTTP + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = client.PostForm("https://"+h.HTTP+"/login", url.Values{"user": {"alice"}, "password": {alicePassword}})
	if err != nil || !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Fatalf("the session cookie over TLS: %v %v", resp.Header.Get("Set-Cookie"), err)
	}
	resp.Body.Close()

	d := websocket.Dialer{TLSClientConfig: certs.ClientConfig(), HandshakeTimeout: hubtest.Timeout}
	conn, _, err := d.Dial("wss://"+h.HTTP+"/ws", http.Header{"Authorization": {basic("alice", alicePassword)}})
	if err != nil {
		t.Fatalf("WSS: %v", err)
	}
	ws := hubtest.WrapWS(t, conn)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["nodes/#"]}]`)
	ws.Expect("clown.talk/-/config/ok")

	device, err := hubtest.ConnectMQTTS(mqtts, "tls-device", "ops", opsPassword, certs.ClientConfig())
	if err != nil {
		t.Fatalf("MQTTS: %v", err)
	}
	defer device.Disconnect(0)
	hubtest.PublishMQTT(t, device, "nodes/tls/paho", 1, false, []byte("1"))
	if f := ws.Expect("nodes/tls/paho"); string(f.Payload) != "1" {
		t.Fatalf("over WSS: %s", f.Payload)
	}

	pub := hubtest.RequireCommand(t, "mosquitto_pub", "mosquitto-clients")
	host, port, _ := net.SplitHostPort(mqtts)
	out, err := exec.Command(pub, "--cafile", certs.CAFile, "-h", host, "-p", port, "-u", "ops", "-P", opsPassword,
		"-q", "1", "-t", "nodes/tls/mosquitto", "-m", `{"ok":true}`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub --cafile: %v\n%s", err, out)
	}
	if f := ws.Expect("nodes/tls/mosquitto"); string(f.Payload) != `{"ok":true}` {
		t.Fatalf("mosquitto_pub over MQTTS: %s", f.Payload)
	}
}
