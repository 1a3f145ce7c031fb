package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// meToken is the API token of the writer in startPeople's users file.
const meToken = "writer-token-0123456789"

// startPeople starts a hub whose users file has a read-only user, a writer
// (also with a token), an admin and no anonymous entry.
func startPeople(t *testing.T) *testServer {
	t.Helper()
	sum := sha256.Sum256([]byte(meToken))
	users, err := auth.Parse([]byte(`
[users.reader]
password = "` + hubtest.PasswordHash(t, "reader-pw") + `"
read = ["nodes/#"]
[users.writer]
password = "` + hubtest.PasswordHash(t, "writer-pw") + `"
read = ["nodes/#"]
readwrite = ["nodes/+/relay/#"]
tokens = ["sha256:` + hex.EncodeToString(sum[:]) + `"]
[users.boss]
password = "` + hubtest.PasswordHash(t, "boss-pw") + `"
admin = true
readwrite = ["#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	authz := auth.New(users)
	ts, _ := startTestServer(t, broker.Config{}, bridge.Config{Authorizer: authz}, Config{Authorizer: authz})
	return ts
}

// me is GET /api/me's answer.
type me struct {
	bridge.UserRights
	Login string `json:"login"`
}

func (ts *testServer) me(t *testing.T, client *http.Client, header http.Header) (int, me, string) {
	t.Helper()
	req, err := http.NewRequest("GET", ts.URL+"/api/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /api/me: Content-Type %q, want JSON", ct)
	}
	var m me
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET /api/me: %v: %s", err, body)
		}
	}
	return resp.StatusCode, m, string(body)
}

func rulesJSON(t *testing.T, rules []bridge.RuleRights) string {
	t.Helper()
	b, err := json.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMeSaysWhoAndHow: /api/me names the user, their rules, whether they
// are an admin and how they logged in (Basic, a token, the login page's
// session), and answers 401 without credentials and after logging out.
func TestMeSaysWhoAndHow(t *testing.T) {
	ts := startPeople(t)
	basic := func(user, pw string) http.Header { return http.Header{"Authorization": {basicAuth(user, pw)}} }

	for _, c := range []struct {
		name   string
		header http.Header
		user   string
		admin  bool
		rules  string
		login  string
	}{
		{"reader", basic("reader", "reader-pw"), "reader", false, `[{"filter":"nodes/#","read":true,"write":false}]`, "basic"},
		{"writer", basic("writer", "writer-pw"), "writer", false,
			`[{"filter":"nodes/#","read":true,"write":false},{"filter":"nodes/+/relay/#","read":true,"write":true}]`, "basic"},
		{"token", http.Header{"Authorization": {"Bearer " + meToken}}, "writer", false,
			`[{"filter":"nodes/#","read":true,"write":false},{"filter":"nodes/+/relay/#","read":true,"write":true}]`, "token"},
		{"admin", basic("boss", "boss-pw"), "boss", true, `[{"filter":"#","read":true,"write":true}]`, "basic"},
	} {
		status, m, body := ts.me(t, ts.client, c.header)
		if status != http.StatusOK || m.User != c.user || m.Open || m.Admin != c.admin || m.Login != c.login || rulesJSON(t, m.Rules) != c.rules {
			t.Errorf("%s: /api/me = %d %s", c.name, status, body)
		}
	}

	if status, _, body := ts.me(t, ts.client, nil); status != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Errorf("/api/me without credentials = %d %s, want 401", status, body)
	}
	if status, _, body := ts.me(t, ts.client, basic("reader", "wrong")); status != http.StatusUnauthorized {
		t.Errorf("/api/me with a wrong password = %d %s, want 401", status, body)
	}

	// The login page's session, then logging out.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: hubtest.Timeout}
	defer browser.CloseIdleConnections()
	resp, err := browser.PostForm(ts.URL+"/login", url.Values{"user": {"reader"}, "password": {"reader-pw"}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, m, body := ts.me(t, browser, nil); status != http.StatusOK || m.User != "reader" || m.Login != "session" {
		t.Fatalf("/api/me after logging in = %d %s", status, body)
	}
	resp, err = browser.PostForm(ts.URL+"/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Errorf("logging out lands on %s, want /login", resp.Request.URL)
	}
	if status, _, body := ts.me(t, browser, nil); status != http.StatusUnauthorized {
		t.Errorf("/api/me after logging out = %d %s, want 401", status, body)
	}
}

// TestMeOnAnOpenHubAndForAnonymous: without a users file everyone is
// anonymous and may do everything; with one, the anonymous entry's rights.
func TestMeOnAnOpenHubAndForAnonymous(t *testing.T) {
	open := startServer(t)
	status, m, body := open.me(t, open.client, nil)
	if status != http.StatusOK || m.User != "anonymous" || !m.Open || !m.Admin || m.Login != "anonymous" || rulesJSON(t, m.Rules) != "[]" {
		t.Errorf("open hub: /api/me = %d %s", status, body)
	}

	users, err := auth.Parse([]byte("[users.anonymous]\nread = [\"public/#\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	authz := auth.New(users)
	ts, _ := startTestServer(t, broker.Config{}, bridge.Config{Authorizer: authz}, Config{Authorizer: authz})
	status, m, body = ts.me(t, ts.client, nil)
	if status != http.StatusOK || m.User != "anonymous" || m.Open || m.Admin || m.Login != "anonymous" ||
		rulesJSON(t, m.Rules) != `[{"filter":"public/#","read":true,"write":false}]` {
		t.Errorf("anonymous entry: /api/me = %d %s", status, body)
	}
}

// TestConfigOKSaysWho: config/ok carries the session's user and rights, the
// same as /api/me, besides its other fields.
func TestConfigOKSaysWho(t *testing.T) {
	ts := startPeople(t)
	for _, c := range []struct {
		user, password string
		admin          bool
		rules          string
	}{
		{"reader", "reader-pw", false, `[{"filter":"nodes/#","read":true,"write":false}]`},
		{"writer", "writer-pw", false, `[{"filter":"nodes/#","read":true,"write":false},{"filter":"nodes/+/relay/#","read":true,"write":true}]`},
		{"boss", "boss-pw", true, `[{"filter":"#","read":true,"write":true}]`},
	} {
		ws := hubtest.DialWS(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", http.Header{"Authorization": {basicAuth(c.user, c.password)}})
		ws.Send(`["clown.talk/-/config/set", {"subscribe": ["nodes/#"], "ack": true}]`)
		f := ws.Expect("clown.talk/-/config/ok")
		var ok struct {
			bridge.UserRights
			Ack     bool   `json:"ack"`
			Session string `json:"session"`
		}
		if err := json.Unmarshal(f.Payload, &ok); err != nil {
			t.Fatal(err)
		}
		if ok.User != c.user || ok.Open || ok.Admin != c.admin || rulesJSON(t, ok.Rules) != c.rules || !ok.Ack || ok.Session == "" {
			t.Errorf("%s: config/ok = %s", c.user, f.Payload)
		}
		_ = ws.Conn.Close()
	}

	open := startServer(t)
	ws := hubtest.DialWS(t, "ws"+strings.TrimPrefix(open.URL, "http")+"/ws", nil)
	ws.Send(`["clown.talk/-/config/set", {}]`)
	if f := ws.Expect("clown.talk/-/config/ok"); !strings.Contains(string(f.Payload), `"user":"anonymous","open":true,"admin":true,"rules":[]`) {
		t.Errorf("open hub: config/ok = %s", f.Payload)
	}
}

// TestLoginPageSaysWhatWentWrong: the login page is the dashboard's (its
// style sheet and icon, served without credentials), keeps the name after a
// wrong password and says why, and says when a session has expired.
func TestLoginPageSaysWhatWentWrong(t *testing.T) {
	ts := startPeople(t)
	for _, path := range []string{"/assets/style.css", "/assets/icon.svg"} {
		if status, _ := ts.doWith(t, "GET", path, nil, ""); status != http.StatusOK {
			t.Errorf("GET %s without credentials = %d, want 200 (the login page uses it)", path, status)
		}
	}
	if status, _ := ts.doWith(t, "GET", "/assets/js/app.js", nil, ""); status != http.StatusUnauthorized {
		t.Errorf("GET /assets/js/app.js without credentials = %d, want 401", status)
	}

	resp, err := ts.client.PostForm(ts.URL+"/login", url.Values{"user": {"reader"}, "password": {"nope"}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, `value="reader"`) || !strings.Contains(page, msgWrongLogin) ||
		!strings.Contains(page, `href="/assets/style.css"`) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("a wrong password: %d %s\n%s", resp.StatusCode, resp.Header, page)
	}

	req, _ := http.NewRequest("GET", ts.URL+"/login?next=/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "from-before-a-restart"})
	resp, err = ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || c.Name == sessionCookie && c.MaxAge < 0
	}
	if !strings.Contains(string(body), msgSessionExpired) || !cleared {
		t.Fatalf("an expired session: cookie cleared %v\n%s", cleared, body)
	}
	if status, page := ts.doWith(t, "GET", "/login", nil, ""); status != http.StatusOK || strings.Contains(page, "login-message") {
		t.Fatalf("a first visit: %d, with a message\n%s", status, page)
	}
}

// TestMeSaysHistory: /api/me says whether the hub keeps a history, so that
// the dashboard's charts ask its series form only then (else the recent
// messages), with no refused request in the page's console.
func TestMeSaysHistory(t *testing.T) {
	for _, keeps := range []bool{false, true} {
		cfg := Config{}
		if keeps {
			rec := history.New(history.Config{Logger: quiet})
			t.Cleanup(func() { _ = rec.Close() })
			cfg.History = rec
		}
		ts, _ := startTestServer(t, broker.Config{}, bridge.Config{}, cfg)
		status, _, body := ts.me(t, http.DefaultClient, nil)
		var got struct{ History *bool }
		if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil || got.History == nil || *got.History != keeps {
			t.Errorf("with a history %v: GET /api/me = %d %s, want \"history\": %v", keeps, status, body, keeps)
		}
	}
}
