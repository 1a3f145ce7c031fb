package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/refusals"
)

// quietRefuser reports refusals to no one, for tests of one guard.
var quietRefuser = refuser{refusals.New(refusals.Config{Logger: quiet})}

// TestRefusalsAreLogged: every 401, 403 and 429 the HTTP layer answers is
// one WARN line naming the door the path leads to, the address, the user
// claimed and why; never a password or a token. A browser sent to the login
// page is not refused.
func TestRefusalsAreLogged(t *testing.T) {
	users, err := auth.Parse([]byte(`
[users.alice]
password = "` + hubtest.PasswordHash(t, "alice-secret") + `"
read = ["nodes/#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Start(broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	authz := auth.New(users)
	hub, err := bridge.New(b, bridge.Config{Logger: quiet, Authorizer: authz})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close(context.Background())
	var logs hubtest.LogBuffer
	refused := refusals.New(refusals.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), PerAddress: 100})
	defer refused.Close()
	srv := httptest.NewServer(New(hub, Config{Logger: quiet, Authorizer: authz, Refusals: refused,
		Throttle: auth.NewThrottle(auth.ThrottleConfig{PerUser: 2, PerAddress: 100, Window: time.Minute})}))
	defer srv.Close()

	const password, token = "not-alices-password", "not-a-token-of-anyone"
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		name   string
		method string
		path   string
		header http.Header
		body   string
		status int
		want   string // the line's attributes; "" for no line
	}{
		{"no credentials", "GET", "/api/state", nil, "", 401,
			`door=http remote=127\.0\.0\.1:\d+ reason="credentials required: log in, or send Basic credentials or a Bearer token" status=401`},
		{"a browser sent to log in", "GET", "/", http.Header{"Accept": {"text/html"}}, "", http.StatusSeeOther, ""},
		{"a wrong password", "GET", "/events", http.Header{"Authorization": {basicAuth("alice", password)}}, "", 401,
			`door=sse remote=127\.0\.0\.1:\d+ user=alice reason="wrong user name, password or token" status=401`},
		{"a wrong token", "GET", "/ws", http.Header{"Authorization": {"Bearer " + token}}, "", 401,
			`door=websocket remote=127\.0\.0\.1:\d+ reason="wrong user name, password or token" status=401`},
		{"Clown.Hub's path without credentials", "GET", "/auth/clown-talk-server_nodes_bridge_0", nil, "", 401,
			`door=websocket remote=127\.0\.0\.1:\d+ reason="credentials required: .+" status=401`},
		{"another origin", "GET", "/api/state", http.Header{"Origin": {"https://evil.example"}}, "", 403,
			`door=http remote=127\.0\.0\.1:\d+ reason="pages from https://evil.example may not use this hub \(see --allow-origin\)" status=403`},
		{"another origin on /mqtt", "GET", "/mqtt", http.Header{"Origin": {"https://evil.example"}}, "", 403,
			`door=mqtt-ws remote=127\.0\.0\.1:\d+ reason="pages from https://evil.example may not use this hub \(see --allow-origin\)" status=403`},
		{"a rebinding name", "GET", "/api/state", http.Header{"Host": {"evil.example"}}, "", 403,
			`door=http remote=127\.0\.0\.1:\d+ reason=".*not for \\"evil.example\\".*" status=403`},
		{"a publish the user may not make", "POST", "/api/publish",
			http.Header{"Authorization": {basicAuth("alice", "alice-secret")}, "Content-Type": {"application/json"}},
			`["nodes/x", 1]`, 403, `door=http remote=127\.0\.0\.1:\d+ user=alice reason=".+" status=403`},
		{"the admin view for a user who is not an admin", "GET", "/api/admin/sessions",
			http.Header{"Authorization": {basicAuth("alice", "alice-secret")}}, "", 403,
			`door=http remote=127\.0\.0\.1:\d+ user=alice reason="alice is not an admin: .+" status=403`},
		{"a wrong login", "POST", "/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			url.Values{"user": {"alice"}, "password": {password}}.Encode(), 401,
			`door=login remote=127\.0\.0\.1:\d+ user=alice reason="wrong user name, password or token" status=401`},
		{"another wrong login", "POST", "/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			url.Values{"user": {"alice"}, "password": {password}}.Encode(), 401,
			`door=login remote=127\.0\.0\.1:\d+ user=alice reason="wrong user name, password or token" status=401`},
		{"a throttled login", "POST", "/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			url.Values{"user": {"alice"}, "password": {password}}.Encode(), 429,
			`door=login remote=127\.0\.0\.1:\d+ user=alice reason="too many failed logins for this name or from this address: try again in \d+ s" status=429`},
		{"a throttled request", "GET", "/api/state", http.Header{"Authorization": {basicAuth("alice", password)}}, "", 429,
			`door=http remote=127\.0\.0\.1:\d+ user=alice reason="too many failed logins .+" status=429`},
	} {
		logs.Reset()
		req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c.header {
			req.Header[k] = v
		}
		req.Host = req.Header.Get("Host")
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.status)
		}
		out := logs.String()
		if c.want == "" {
			if out != "" {
				t.Errorf("%s: logged\n%s", c.name, out)
			}
			continue
		}
		re := regexp.MustCompile(`^time=\S+ level=WARN msg=refused ` + c.want + "\n$")
		if !re.MatchString(out) {
			t.Errorf("%s: logged\n%s\nwant one line matching %s", c.name, out, re)
		}
		if strings.Contains(out, password) || strings.Contains(out, token) || strings.Contains(out, "alice-secret") {
			t.Errorf("%s: a secret in the log:\n%s", c.name, out)
		}
	}
}
