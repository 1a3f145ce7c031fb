package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHostGuardStopsDNSRebinding: on a loopback listener only loopback names,
// --allow-host names and --allow-origin hosts are answered, whatever the
// port and case; look-alikes are refused with a JSON error that says what
// to do. On another listener Host is checked only once names are given.
// Health answers every name.
func TestHostGuardStopsDNSRebinding(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	loopback := hostGuard(false, nil, nil, quietRefuser)(ok)
	named := hostGuard(false, []string{"Hub.LAN", "192.168.1.5"}, []string{"https://dash.example:8443", "*"}, quietRefuser)(ok)
	exposed := hostGuard(true, nil, nil, quietRefuser)(ok)
	exposedNamed := hostGuard(true, []string{"hub.example"}, nil, quietRefuser)(ok)

	tests := []struct {
		name    string
		h       http.Handler
		host    string
		path    string
		allowed bool
	}{
		{"localhost", loopback, "localhost:8080", "/api/state", true},
		{"localhost without port", loopback, "localhost", "/", true},
		{"localhost, any case, final dot", loopback, "LocalHost.:8080", "/", true},
		{"a subdomain of localhost", loopback, "dash.localhost:8080", "/ws", true},
		{"127.0.0.1", loopback, "127.0.0.1:8080", "/ws", true},
		{"127.0.0.0/8", loopback, "127.1.2.3:8080", "/ws", true},
		{"::1", loopback, "[::1]:8080", "/events", true},
		{"::1 without port", loopback, "[::1]", "/events", true},
		{"a rebinding name", loopback, "evil.example:8080", "/api/state", false},
		{"a rebinding name without port", loopback, "evil.example", "/", false},
		{"localhost as a prefix", loopback, "localhost.evil.example:8080", "/", false},
		{"localhost as a suffix without dot", loopback, "evillocalhost:8080", "/", false},
		{"a loopback address as a prefix", loopback, "127.0.0.1.evil.example:8080", "/", false},
		{"0.0.0.0", loopback, "0.0.0.0:8080", "/", false},
		{"another address", loopback, "192.168.1.5:8080", "/", false},
		{"no Host", loopback, "", "/", false},
		{"the MQTT door", loopback, "evil.example:8080", "/mqtt", false},
		{"the login page", loopback, "evil.example:8080", "/login", false},
		{"health", loopback, "evil.example:8080", "/healthz", true},
		{"readiness", loopback, "evil.example:8080", "/readyz", true},
		{"an --allow-host name", named, "hub.lan:8080", "/api/state", true},
		{"an --allow-host address", named, "192.168.1.5:8080", "/api/state", true},
		{"an --allow-origin host, another port", named, "dash.example:8080", "/api/state", true},
		{"loopback next to --allow-host", named, "localhost:8080", "/api/state", true},
		{"not listed", named, "evil.example:8080", "/api/state", false},
		{"a listed name's subdomain", named, "x.hub.lan:8080", "/api/state", false},
		{"exposed: no check", exposed, "evil.example:8080", "/api/state", true},
		{"exposed with --allow-host: listed", exposedNamed, "hub.example", "/api/state", true},
		{"exposed with --allow-host: loopback", exposedNamed, "127.0.0.1:8080", "/api/state", true},
		{"exposed with --allow-host: not listed", exposedNamed, "203.0.113.9:8080", "/api/state", false},
		{"exposed with --allow-host: health", exposedNamed, "10.0.0.7:8080", "/healthz", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "http://placeholder"+tt.path, nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		tt.h.ServeHTTP(w, r)
		switch {
		case tt.allowed && w.Code != http.StatusTeapot:
			t.Errorf("%s: Host %q %s: %d %s, want it let through", tt.name, tt.host, tt.path, w.Code, w.Body)
		case !tt.allowed && (w.Code != http.StatusForbidden || w.Header().Get("Content-Type") != "application/json" ||
			!strings.Contains(w.Body.String(), `"code":"forbidden"`) || !strings.Contains(w.Body.String(), "--allow-host")):
			t.Errorf("%s: Host %q %s: %d %s, want 403 with a JSON error naming --allow-host", tt.name, tt.host, tt.path, w.Code, w.Body)
		}
	}
}
