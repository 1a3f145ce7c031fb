package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// The admin API against a real broker, hub and HTTP server, with paho and
// mosquitto clients.

// adminUsers: "root" is an admin by the flag, "sys" by reading all of
// $SYS, "reader" reads everything and is no admin, "ops" is an admin who
// may write only ret/mine/# and read ret/#.
func adminUsers(t *testing.T) *auth.Authorizer {
	t.Helper()
	hash := hubtest.PasswordHash(t, "password")
	users, err := auth.Parse([]byte(`
[users.root]
password = "` + hash + `"
readwrite = ["#"]
admin = true
[users.sys]
password = "` + hash + `"
read = ["#", "$SYS/#"]
[users.reader]
password = "` + hash + `"
read = ["#", "$SYS/broker/uptime"]
[users.ops]
password = "` + hash + `"
read = ["ret/#"]
readwrite = ["ret/mine/#"]
admin = true
`))
	if err != nil {
		t.Fatal(err)
	}
	return auth.New(users)
}

// startAdminServer starts a broker, a hub (with hcfg) and the HTTP
// surface, each deciding with adminUsers.
func startAdminServer(t *testing.T, hcfg bridge.Config) *testServer {
	t.Helper()
	authz := adminUsers(t)
	hcfg.Authorizer = authz
	ts, _ := startTestServer(t, broker.Config{Authorizer: authz}, hcfg, Config{Authorizer: authz})
	return ts
}

func as(user string) http.Header {
	return http.Header{"Authorization": {basicAuth(user, "password")}, "Content-Type": {"application/json"}}
}

// admin asks the admin API as user and decodes a 200 answer into out.
func (ts *testServer) admin(t *testing.T, user, method, path, body string, out any) {
	t.Helper()
	status, got := ts.doWith(t, method, path, as(user), body)
	if status != http.StatusOK {
		t.Fatalf("%s %s as %s = %d %s", method, path, user, status, got)
	}
	if err := json.Unmarshal([]byte(got), out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, got)
	}
}

// TestAdminIsForAdmins: every admin endpoint, and any path below
// /api/admin, answers 403 JSON to a user who is no admin (one who reads
// everything but $SYS) and 401 to no one; the admin flag and reading all
// of $SYS open it.
func TestAdminIsForAdmins(t *testing.T) {
	ts := startAdminServer(t, bridge.Config{})
	endpoints := []struct{ method, path, body string }{
		{"GET", "/api/admin/mqtt-clients", ""},
		{"POST", "/api/admin/mqtt-clients/disconnect", `{"id": "x"}`},
		{"GET", "/api/admin/sessions", ""},
		{"POST", "/api/admin/sessions/disconnect", `{"id": "x"}`},
		{"GET", "/api/admin/retained?filter=%23", ""},
		{"POST", "/api/admin/retained/clear", `{"filter": "#", "dry_run": true}`},
		{"POST", "/api/admin/retained/restore", `{"messages": [{"topic": "a", "payload": "eA=="}]}`},
		{"GET", "/api/admin/no-such-thing", ""},
	}
	for _, e := range endpoints {
		status, body := ts.doWith(t, e.method, e.path, as("reader"), e.body)
		if status != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "reader is not an admin") {
			t.Errorf("%s %s as a reader = %d %s, want 403 forbidden", e.method, e.path, status, body)
		}
		if status, _ := ts.doWith(t, e.method, e.path, http.Header{"Content-Type": {"application/json"}}, e.body); status != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials = %d, want 401", e.method, e.path, status)
		}
	}
	for _, user := range []string{"root", "sys", "ops"} {
		var res struct{ Total int }
		ts.admin(t, user, "GET", "/api/admin/mqtt-clients", "", &res)
	}
	// The page itself is the dashboard's: anyone logged in gets it, and it
	// says what the API says.
	if status, _ := ts.doWith(t, "GET", "/admin", as("reader"), ""); status != http.StatusOK {
		t.Errorf("GET /admin = %d", status)
	}
}

type clientList struct {
	Total     int
	Truncated bool
	Clients   []bridge.MQTTClient
}

func (ts *testServer) mqttClients(t *testing.T) clientList {
	t.Helper()
	var res clientList
	ts.admin(t, "root", "GET", "/api/admin/mqtt-clients", "", &res)
	return res
}

func findClient(list clientList, id string) (bridge.MQTTClient, bool) {
	i := slices.IndexFunc(list.Clients, func(c bridge.MQTTClient) bool { return c.ID == id })
	if i < 0 {
		return bridge.MQTTClient{}, false
	}
	return list.Clients[i], true
}

// TestAdminDisconnectsMQTTClients: the connected clients are listed with
// who they are and what they hold; a disconnect ends one, whose Will is
// published (once), and a mosquitto_sub on MQTT 5 is told "administrative
// action" and exits.
func TestAdminDisconnectsMQTTClients(t *testing.T) {
	ts := startAdminServer(t, bridge.Config{})
	addr := ts.Broker.Addr().String()
	watcher, err := hubtest.ConnectMQTTAs(addr, "watcher", "root", "password")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Disconnect(100)
	wills := hubtest.SubscribeMQTT(t, watcher, "wills/#", 1)
	before := time.Now().Add(-time.Second)
	device, err := hubtest.ConnectMQTTWith("tcp://"+addr, "device-1", "reader", "password", func(o *paho.ClientOptions) {
		o.SetWill("wills/device-1", "gone", 1, false)
	})
	if err == nil {
		// reader may not publish its Will: refused. root may.
		device.Disconnect(100)
		t.Fatal("a Will the user may not publish was let in")
	}
	device, err = hubtest.ConnectMQTTWith("tcp://"+addr, "device-1", "root", "password", func(o *paho.ClientOptions) {
		o.SetWill("wills/device-1", "gone", 1, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer device.Disconnect(100)
	hubtest.SubscribeMQTT(t, device, "cmd/device-1/#", 1)
	hubtest.SubscribeMQTT(t, device, "cmd/all", 0)

	list := ts.mqttClients(t)
	c, ok := findClient(list, "device-1")
	if !ok || list.Total != 2 || list.Truncated {
		t.Fatalf("clients: %+v", list)
	}
	if c.User != "root" || c.Transport != "tcp" || c.ProtocolVersion != 4 || !c.Clean ||
		c.SubscriptionCount != 2 || strings.Join(c.Subscriptions, " ") != "cmd/all cmd/device-1/#" ||
		c.Since.Before(before) || c.Since.After(time.Now()) || c.Queued != 0 || !strings.HasPrefix(c.Remote, "127.0.0.1:") {
		t.Fatalf("device-1 listed as %+v", c)
	}

	var res struct {
		OK     bool
		Client bridge.MQTTClient
	}
	ts.admin(t, "root", "POST", "/api/admin/mqtt-clients/disconnect", `{"id": "device-1"}`, &res)
	if !res.OK || res.Client.ID != "device-1" {
		t.Fatalf("disconnect answered %+v", res)
	}
	if m := hubtest.Receive(t, wills, hubtest.Timeout, "the Will"); m.Topic != "wills/device-1" || m.Payload != "gone" {
		t.Fatalf("watcher got %+v", m)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return !device.IsConnectionOpen() }, "device-1 is still connected")
	hubtest.Eventually(t, hubtest.Timeout, func() bool { _, ok := findClient(ts.mqttClients(t), "device-1"); return !ok },
		"device-1 is still listed")
	select {
	case m := <-wills:
		t.Fatalf("a second Will: %+v", m)
	case <-time.After(200 * time.Millisecond): // the Will came once, within this
	}

	// Unknown ids and bad bodies.
	for _, c := range []struct {
		body   string
		status int
	}{{`{"id": "device-1"}`, 404}, {`{"id": ""}`, 400}, {`{"id": 3}`, 400}, {`nonsense`, 400}} {
		if status, body := ts.doWith(t, "POST", "/api/admin/mqtt-clients/disconnect", as("root"), c.body); status != c.status {
			t.Errorf("disconnect %s = %d %s, want %d", c.body, status, body, c.status)
		}
	}
	if status, _ := ts.doWith(t, "POST", "/api/admin/mqtt-clients/disconnect", http.Header{"Authorization": as("root")["Authorization"], "Content-Type": {"text/plain"}}, `{"id": "x"}`); status != http.StatusUnsupportedMediaType {
		t.Errorf("a disconnect that is not JSON = %d, want 415", status)
	}

	// mosquitto_sub over MQTT 5 reads DISCONNECT 0x98 (152) and exits.
	sub := hubtest.RequireCommand(t, "mosquitto_sub", "mosquitto-clients")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-u", "reader", "-P", "password", "-V", "5", "-d", "-i", "mosq-1", "-t", "x/#")
	var out hubtest.LogBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		c, ok := findClient(ts.mqttClients(t), "mosq-1")
		return ok && c.SubscriptionCount == 1
	}, "mosquitto_sub is not listed with its subscription")
	c, _ = findClient(ts.mqttClients(t), "mosq-1")
	if c.ProtocolVersion != 5 || c.User != "reader" {
		t.Fatalf("mosquitto_sub listed as %+v", c)
	}
	ts.admin(t, "root", "POST", "/api/admin/mqtt-clients/disconnect", `{"id": "mosq-1"}`, &res)
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "Received DISCONNECT (152)") {
		t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
	}
}

type sessionList struct {
	Total    int
	Sessions []bridge.SessionInfo
}

// TestAdminDisconnectsBrowserSessions: WebSocket and SSE sessions are
// listed with their user, mount and subscriptions; a disconnect closes a
// WebSocket with code 4001 and an SSE stream with "event: close".
func TestAdminDisconnectsBrowserSessions(t *testing.T) {
	ts := startAdminServer(t, bridge.Config{})
	ws := hubtest.DialWS(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws/nodes", as("reader"))
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["a/#", "b/+"]}]`)
	ws.Expect("clown.talk/-/config/ok")
	sse := hubtest.DialSSE(t, ts.URL+"/events?filter=c/%23", as("sys"))
	defer sse.Close()

	var list sessionList
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		ts.admin(t, "root", "GET", "/api/admin/sessions", "", &list)
		return list.Total == 2
	}, "sessions: %+v", &list)
	byTransport := map[string]bridge.SessionInfo{}
	for _, s := range list.Sessions {
		byTransport[s.Transport] = s
	}
	w, e := byTransport["ws"], byTransport["sse"]
	if w.User != "reader" || w.Base != "nodes" || strings.Join(w.Subscriptions, " ") != "a/# b/+" || w.SubscriptionCount != 2 || w.ID == "" {
		t.Fatalf("the WebSocket listed as %+v", w)
	}
	if e.User != "sys" || strings.Join(e.Subscriptions, " ") != "c/#" {
		t.Fatalf("the SSE stream listed as %+v", e)
	}
	// Pages.
	var first sessionList
	ts.admin(t, "root", "GET", "/api/admin/sessions?limit=1", "", &first)
	var second struct {
		sessionList
		Offset    int
		Truncated bool
	}
	ts.admin(t, "root", "GET", "/api/admin/sessions?limit=1&offset=1", "", &second)
	if len(first.Sessions) != 1 || len(second.Sessions) != 1 || second.Truncated || first.Sessions[0].ID == second.Sessions[0].ID {
		t.Fatalf("pages of one: %+v then %+v", first, second)
	}
	for _, q := range []string{"limit=0", "offset=-1", "limit=x"} {
		if status, _ := ts.doWith(t, "GET", "/api/admin/sessions?"+q, as("root"), ""); status != http.StatusBadRequest {
			t.Errorf("?%s = %d, want 400", q, status)
		}
	}

	var res struct{ OK bool }
	ts.admin(t, "root", "POST", "/api/admin/sessions/disconnect", `{"id": "`+w.ID+`"}`, &res)
	_, _, err := ws.Conn.ReadMessage()
	for err == nil {
		_, _, err = ws.Conn.ReadMessage()
	}
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4001 || ce.Text != "disconnected by an admin" {
		t.Fatalf("the WebSocket ended with %v, want close 4001", err)
	}
	ts.admin(t, "root", "POST", "/api/admin/sessions/disconnect", `{"id": "`+e.ID+`"}`, &res)
	for {
		ev, err := sse.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("the SSE stream: %v before its close event", err)
		}
		if ev.Event == "close" {
			if !strings.Contains(ev.Data, "disconnected by an admin") {
				t.Fatalf("close event %+v", ev)
			}
			break
		}
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		ts.admin(t, "root", "GET", "/api/admin/sessions", "", &list)
		return list.Total == 0
	}, "sessions left: %+v", &list)
	if status, _ := ts.doWith(t, "POST", "/api/admin/sessions/disconnect", as("root"), `{"id": "`+w.ID+`"}`); status != http.StatusNotFound {
		t.Errorf("disconnecting a closed session = %d, want 404", status)
	}
}

type retainedPage struct {
	Total     int
	Bytes     int
	Offset    int
	Truncated bool
	Messages  []struct {
		Topic   string
		QoS     byte
		Size    int
		Created *time.Time
		Origin  string
		Preview string
		Binary  bool
	}
}

type clearAns struct {
	DryRun    bool `json:"dry_run"`
	Count     int
	Bytes     int
	Truncated bool
	Skipped   int                            `json:"skipped_count"`
	Listed    []struct{ Topic, Code string } `json:"skipped"`
	Messages  []struct {
		Topic   string `json:"topic"`
		QoS     byte   `json:"qos"`
		Payload []byte `json:"payload"`
	}
}

func (ts *testServer) retained(t *testing.T, user, query string) retainedPage {
	t.Helper()
	var p retainedPage
	ts.admin(t, user, "GET", "/api/admin/retained?"+query, "", &p)
	return p
}

func (ts *testServer) clear(t *testing.T, user, filter string, dryRun bool) clearAns {
	t.Helper()
	var a clearAns
	ts.admin(t, user, "POST", "/api/admin/retained/clear", fmt.Sprintf(`{"filter": %q, "dry_run": %v}`, filter, dryRun), &a)
	return a
}

// retainedOnly is what mosquitto_sub --retained-only prints for filter:
// "topic payload" lines, sorted.
func retainedOnly(t *testing.T, addr, filter string) []string {
	t.Helper()
	sub := hubtest.RequireCommand(t, "mosquitto_sub", "mosquitto-clients")
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.CommandContext(t.Context(), sub, "-h", host, "-p", port, "-u", "root", "-P", "password",
		"-t", filter, "--retained-only", "-v", "-W", "1").Output()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 27) { // 27: -W timed out, the normal end
		t.Fatalf("mosquitto_sub: %v", err)
	}
	lines := strings.FieldsFunc(string(out), func(r rune) bool { return r == '\n' })
	slices.Sort(lines)
	return lines
}

// TestAdminRetainedBrowseClearUndo: browse by filter with counts, sizes,
// ages and pages; a dry run lists and changes nothing; a clear removes
// from the broker (mosquitto_sub sees none) and the hub's last values, and
// answers with the payloads; a restore brings them back as they were.
func TestAdminRetainedBrowseClearUndo(t *testing.T) {
	ts := startAdminServer(t, bridge.Config{})
	addr := ts.Broker.Addr().String()
	dev, err := hubtest.ConnectMQTTAs(addr, "dev", "root", "password")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(100)
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	want := []string{"ret/1 one", "ret/2 {\"v\":2}", "ret/3 three", "ret/a/b deep"}
	for i, line := range want {
		topic, payload, _ := strings.Cut(line, " ")
		hubtest.PublishMQTT(t, dev, topic, byte(i%2), true, []byte(payload))
	}
	hubtest.PublishMQTT(t, dev, "other/x", 1, true, []byte{0xff, 0xfe})
	hubtest.PublishMQTT(t, dev, "ret/live", 0, false, []byte("not retained"))

	p := ts.retained(t, "root", "filter=ret/%23")
	if p.Total != 4 || p.Bytes != 3+7+5+4 || p.Truncated || len(p.Messages) != 4 {
		t.Fatalf("ret/#: %+v", p)
	}
	m := p.Messages[1]
	if m.Topic != "ret/2" || m.QoS != 1 || m.Size != 7 || m.Preview != `{"v":2}` || m.Origin != "dev" || m.Created == nil || m.Created.Before(before) || m.Created.After(time.Now()) {
		t.Fatalf("ret/2 listed as %+v", m)
	}
	if p := ts.retained(t, "root", "filter=%23"); p.Total != 5 || p.Messages[0].Topic != "other/x" || !p.Messages[0].Binary || p.Messages[0].Preview != "" {
		t.Fatalf("#: %+v", p)
	}
	if p := ts.retained(t, "root", "filter=ret/%23&offset=1&limit=2"); len(p.Messages) != 2 || p.Messages[0].Topic != "ret/2" || !p.Truncated || p.Total != 4 {
		t.Fatalf("a page: %+v", p)
	}
	for _, q := range []string{"filter=", "filter=a/%23/b", "filter=%23&limit=0"} {
		if status, body := ts.doWith(t, "GET", "/api/admin/retained?"+q, as("root"), ""); status != http.StatusBadRequest {
			t.Errorf("?%s = %d %s, want 400", q, status, body)
		}
	}

	dry := ts.clear(t, "root", "ret/#", true)
	if !dry.DryRun || dry.Count != 4 || dry.Bytes != 19 || len(dry.Messages) != 4 || dry.Messages[0].Payload != nil || dry.Skipped != 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if got := retainedOnly(t, addr, "ret/#"); !slices.Equal(got, want) {
		t.Fatalf("after the dry run mosquitto_sub got %q, want %q", got, want)
	}

	done := ts.clear(t, "root", "ret/#", false)
	if done.DryRun || done.Count != 4 || len(done.Messages) != 4 || string(done.Messages[1].Payload) != `{"v":2}` || done.Messages[1].QoS != 1 {
		t.Fatalf("clear: %+v", done)
	}
	if got := retainedOnly(t, addr, "ret/#"); len(got) != 0 {
		t.Fatalf("after the clear mosquitto_sub got %q", got)
	}
	if p := ts.retained(t, "root", "filter=%23"); p.Total != 1 {
		t.Fatalf("after the clear: %+v", p)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, body := ts.doWith(t, "GET", "/api/state?filter=ret/%23", as("root"), "")
		return !strings.Contains(body, `"ret/1"`) && strings.Contains(body, `"ret/live"`)
	}, "the hub still has the cleared values")

	// Clear one topic: the filter is its name.
	if one := ts.clear(t, "root", "other/x", false); one.Count != 1 || one.Messages[0].Topic != "other/x" {
		t.Fatalf("clearing one: %+v", one)
	}

	// Undo: the page sends back what the clear answered.
	type restoreMsg struct {
		Topic   string `json:"topic"`
		Payload []byte `json:"payload"`
		QoS     byte   `json:"qos"`
	}
	var msgs []restoreMsg
	for _, m := range done.Messages {
		msgs = append(msgs, restoreMsg{m.Topic, m.Payload, m.QoS})
	}
	body, _ := json.Marshal(map[string]any{"messages": msgs})
	var restored struct {
		Restored int
		Skipped  int `json:"skipped_count"`
	}
	ts.admin(t, "root", "POST", "/api/admin/retained/restore", string(body), &restored)
	if restored.Restored != 4 || restored.Skipped != 0 {
		t.Fatalf("restore: %+v", restored)
	}
	if got := retainedOnly(t, addr, "ret/#"); !slices.Equal(got, want) {
		t.Fatalf("after the undo mosquitto_sub got %q, want %q", got, want)
	}
	if p := ts.retained(t, "root", "filter=ret/%23"); p.Total != 4 || p.Messages[1].QoS != 1 || p.Messages[1].Origin != "motehub" {
		t.Fatalf("after the undo: %+v", p)
	}
}

// TestAdminRetainedFollowsTheACL: an admin browses only what they may
// read, clears only what they may write (the rest is listed as skipped, in
// the dry run too), and restores only where they may publish.
func TestAdminRetainedFollowsTheACL(t *testing.T) {
	ts := startAdminServer(t, bridge.Config{})
	for _, topic := range []string{"ret/mine/a", "ret/theirs/b", "secret/c"} {
		ts.publishRetained(t, topic, "v")
	}
	if p := ts.retained(t, "ops", "filter=%23"); p.Total != 2 || p.Messages[0].Topic != "ret/mine/a" || p.Messages[1].Topic != "ret/theirs/b" {
		t.Fatalf("ops browses %+v", p)
	}
	for _, dry := range []bool{true, false} {
		a := ts.clear(t, "ops", "#", dry)
		if a.Count != 1 || a.Messages[0].Topic != "ret/mine/a" || a.Skipped != 1 || a.Listed[0].Topic != "ret/theirs/b" || a.Listed[0].Code != "forbidden" {
			t.Fatalf("ops clears # (dry run %v): %+v", dry, a)
		}
	}
	if p := ts.retained(t, "root", "filter=%23"); p.Total != 2 {
		t.Fatalf("after ops' clear root sees %+v", p)
	}
	var restored struct {
		Restored int
		Skipped  int                            `json:"skipped_count"`
		Listed   []struct{ Topic, Code string } `json:"skipped"`
	}
	ts.admin(t, "ops", "POST", "/api/admin/retained/restore",
		`{"messages": [{"topic": "ret/mine/a", "payload": "dg=="}, {"topic": "ret/theirs/b", "payload": "dg=="}, {"topic": "$SYS/x", "payload": "dg=="}, {"topic": "ret/mine/e"}, {"topic": "ret/mine/q", "payload": "dg==", "qos": 3}]}`, &restored)
	codes := []string{}
	for _, s := range restored.Listed {
		codes = append(codes, s.Code)
	}
	if restored.Restored != 1 || restored.Skipped != 4 || strings.Join(codes, " ") != "forbidden bad-topic bad-request bad-request" {
		t.Fatalf("ops restores: %+v", restored)
	}
}

func (ts *testServer) publishRetained(t *testing.T, topic, payload string) {
	t.Helper()
	if err := ts.Broker.Publish(t.Context(), bridge.Message{Topic: topic, Payload: []byte(payload), Retain: true}); err != nil {
		t.Fatal(err)
	}
}

// TestAdminBoundsHold: a listing gives at most 1,000; a clear takes at
// most 10,000 messages and 16 MiB and says "truncated"; a restore takes
// at most 10,000 messages.
func TestAdminBoundsHold(t *testing.T) {
	// The hub follows none of these topics: its device model would take
	// minutes of CPU over 20,000 messages on 10,000 sibling topics.
	ts := startAdminServer(t, bridge.Config{BusFilters: []string{"followed/#"}})
	for i := range maxClear + 5 {
		ts.publishRetained(t, "many/"+strconv.Itoa(i), "x")
	}
	if p := ts.retained(t, "root", "filter=many/%23&limit=5000"); len(p.Messages) != maxPage || p.Total != maxClear+5 || !p.Truncated {
		t.Fatalf("a listing of %d: %d messages, truncated %v", p.Total, len(p.Messages), p.Truncated)
	}
	if a := ts.clear(t, "root", "many/#", false); a.Count != maxClear || !a.Truncated {
		t.Fatalf("a clear of %d: %d, truncated %v", maxClear+5, a.Count, a.Truncated)
	}
	if a := ts.clear(t, "root", "many/#", false); a.Count != 5 || a.Truncated {
		t.Fatalf("the second clear: %d, truncated %v", a.Count, a.Truncated)
	}

	big := strings.Repeat("b", 1<<20)
	for i := range 17 {
		ts.publishRetained(t, fmt.Sprintf("big/%02d", i), big)
	}
	if a := ts.clear(t, "root", "big/#", true); a.Count != 16 || a.Bytes != maxClearBytes || !a.Truncated {
		t.Fatalf("a dry run of 17 MiB: %d messages, %d bytes, truncated %v", a.Count, a.Bytes, a.Truncated)
	}

	var msgs strings.Builder
	msgs.WriteString(`{"messages": [`)
	for i := range maxClear + 1 {
		if i > 0 {
			msgs.WriteString(",")
		}
		fmt.Fprintf(&msgs, `{"topic": "r/%d", "payload": "%s"}`, i, base64.StdEncoding.EncodeToString([]byte("x")))
	}
	msgs.WriteString("]}")
	if status, body := ts.doWith(t, "POST", "/api/admin/retained/restore", as("root"), msgs.String()); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a restore of %d = %d %s", maxClear+1, status, body)
	}
	if p := ts.retained(t, "root", "filter=r/%23"); p.Total != 0 {
		t.Fatalf("a refused restore published %d", p.Total)
	}
}

// TestAdminWithoutEmbeddedBroker: with an upstream broker the MQTT parts
// answer 501 "unsupported"; the browser sessions still list.
func TestAdminWithoutEmbeddedBroker(t *testing.T) {
	b, err := broker.Start(broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	hub, err := bridge.New(b, bridge.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close(context.Background())
	srv := httptest.NewServer(New(hub, Config{Logger: quiet}))
	defer srv.Close()
	for _, path := range []string{"/api/admin/mqtt-clients", "/api/admin/retained?filter=%23"} {
		if status, body := get(t, srv.URL+path); status != http.StatusNotImplemented || !strings.Contains(body, `"unsupported"`) {
			t.Errorf("GET %s = %d %s", path, status, body)
		}
	}
	if status, body := get(t, srv.URL+"/api/admin/sessions"); status != http.StatusOK {
		t.Errorf("GET /api/admin/sessions = %d %s", status, body)
	}
}
