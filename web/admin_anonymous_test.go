package web

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// anonymousReadsSys is a users file whose anonymous entry may read every
// topic, $SYS included (a broker's statistics shown to all, as many
// Mosquitto setups do), and write ret/#; root is the admin.
func anonymousReadsSys(t *testing.T, withRoot bool) *auth.Users {
	t.Helper()
	text := `
[users.anonymous]
read = ["#", "$SYS/#"]
readwrite = ["ret/#"]
`
	if withRoot {
		text += `
[users.root]
password = "` + hubtest.PasswordHash(t, "password") + `"
readwrite = ["#"]
admin = true
`
	}
	users, err := auth.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return users
}

// TestAnonymousIsNeverAnAdmin: a users file may not give anonymous the
// admin flag, and reading all of $SYS does not give it either: without
// credentials every admin endpoint answers 403 and an MQTT client stays
// connected; /api/me says "admin": false. A logged-in admin removed by a
// reload, whose cookie now counts as anonymous, is refused too.
func TestAnonymousIsNeverAnAdmin(t *testing.T) {
	authz := auth.New(anonymousReadsSys(t, true))
	ts, _ := startTestServer(t, broker.Config{Authorizer: authz}, bridge.Config{Authorizer: authz}, Config{Authorizer: authz})

	device, err := hubtest.ConnectMQTTAs(ts.Broker.Addr().String(), "device-1", "root", "password")
	if err != nil {
		t.Fatal(err)
	}
	defer device.Disconnect(100)
	ts.publishRetained(t, "ret/a", "1")

	json := http.Header{"Content-Type": {"application/json"}}
	for _, e := range []struct{ method, path, body string }{
		{"GET", "/api/admin/mqtt-clients", ""},
		{"POST", "/api/admin/mqtt-clients/disconnect", `{"id": "device-1"}`},
		{"GET", "/api/admin/sessions", ""},
		{"GET", "/api/admin/retained?filter=%23", ""},
		{"POST", "/api/admin/retained/clear", `{"filter": "ret/#", "dry_run": false}`},
		{"POST", "/api/admin/retained/restore", `{"messages": [{"topic": "ret/b", "payload": "eA=="}]}`},
	} {
		status, body := ts.doWith(t, e.method, e.path, json, e.body)
		if status != http.StatusForbidden || !strings.Contains(body, "anonymous is not an admin") {
			t.Errorf("%s %s without credentials = %d %s, want 403", e.method, e.path, status, body)
		}
	}
	if !device.IsConnectionOpen() {
		t.Error("an anonymous request disconnected device-1")
	}
	if got := retainedOnly(t, ts.Broker.Addr().String(), "ret/#"); strings.Join(got, " ") != "ret/a 1" {
		t.Errorf("retained after anonymous requests: %q, want \"ret/a 1\" alone", got)
	}
	if status, m, body := ts.me(t, ts.client, nil); status != http.StatusOK || m.User != "anonymous" || m.Admin {
		t.Errorf("/api/me without credentials = %d %s, want anonymous and no admin", status, body)
	}

	// root logs in, then a reload removes root: the cookie is no longer
	// root's, and the request is anonymous's.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: hubtest.Timeout}
	defer browser.CloseIdleConnections()
	resp, err := browser.PostForm(ts.URL+"/login", url.Values{"user": {"root"}, "password": {"password"}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sessions := func() int {
		resp, err := browser.Get(ts.URL + "/api/admin/sessions")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := sessions(); status != http.StatusOK {
		t.Fatalf("root's session: /api/admin/sessions = %d, want 200", status)
	}
	if err := authz.Replace(anonymousReadsSys(t, false)); err != nil {
		t.Fatal(err)
	}
	if status := sessions(); status != http.StatusForbidden {
		t.Errorf("root removed by a reload: /api/admin/sessions with root's cookie = %d, want 403", status)
	}
}

// TestAdminDryRunSaysWhatAClearDoes: a dry run lists what the clear would
// do, not what the ACL alone allows: an admin who may write "$SYS/#" sees
// in the dry run, as in the clear, that the broker's own $SYS messages
// are not the admin's to clear (no client publishes on '$' topics).
func TestAdminDryRunSaysWhatAClearDoes(t *testing.T) {
	users, err := auth.Parse([]byte(`
[users.op]
password = "` + hubtest.PasswordHash(t, "password") + `"
readwrite = ["#", "$SYS/#"]
admin = true
`))
	if err != nil {
		t.Fatal(err)
	}
	authz := auth.New(users)
	ts, _ := startTestServer(t, broker.Config{Authorizer: authz, SysInterval: time.Second}, bridge.Config{Authorizer: authz}, Config{Authorizer: authz})
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return ts.retained(t, "op", "filter=%24SYS%2F%23").Total > 0 },
		"the broker retains no $SYS message")
	ts.publishRetained(t, "ret/a", "1")

	dry := ts.clear(t, "op", "$SYS/#", true)
	if dry.Count != 0 || dry.Skipped == 0 || dry.Listed[0].Code != bridge.CodeBadTopic {
		t.Errorf("dry run of $SYS/#: %d would go, %d skipped (%+v); want none, all skipped as bad-topic", dry.Count, dry.Skipped, dry.Listed)
	}
	if clear := ts.clear(t, "op", "$SYS/#", false); clear.Count != 0 || clear.Skipped == 0 {
		t.Errorf("clear of $SYS/#: %d cleared, %d skipped; want none cleared", clear.Count, clear.Skipped)
	}
	dry = ts.clear(t, "op", "ret/#", true)
	if dry.Count != 1 || dry.Skipped != 0 {
		t.Errorf("dry run of ret/#: %+v, want ret/a", dry)
	}
}
