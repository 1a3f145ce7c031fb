package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/motehub/motehub/bridge"
)

func TestOriginGuard(t *testing.T) {
	h := originGuard([]string{"https://dash.example"}, quietRefuser)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	do := func(method, origin string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://hub.example/api/state", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do("GET", "", nil); w.Code != http.StatusTeapot || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("no Origin: %d %v", w.Code, w.Header())
	}
	if w := do("POST", "http://hub.example", nil); w.Code != http.StatusTeapot || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("same origin: %d, CORS headers %v", w.Code, w.Header())
	}
	if w := do("POST", "https://evil.example", nil); w.Code != http.StatusForbidden {
		t.Fatalf("another origin: %d, want 403", w.Code)
	}
	w := do("GET", "https://dash.example", nil)
	if w.Code != http.StatusTeapot || w.Header().Get("Access-Control-Allow-Origin") != "https://dash.example" ||
		w.Header().Get("Access-Control-Allow-Credentials") != "true" || w.Header().Get("Vary") != "Origin" {
		t.Fatalf("an allowed origin: %d %v", w.Code, w.Header())
	}
	w = do("OPTIONS", "https://dash.example", map[string]string{"Access-Control-Request-Method": "POST"})
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("a preflight: %d %v", w.Code, w.Header())
	}
}

func TestClientAddress(t *testing.T) {
	var seen string
	h := clientAddress([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = r.RemoteAddr
	}))
	for _, c := range []struct{ peer, xff, want string }{
		{"10.1.1.1:5000", "203.0.113.7", "203.0.113.7:0"},
		{"10.1.1.1:5000", "198.51.100.1, 203.0.113.7, 10.2.2.2", "203.0.113.7:0"}, // the rightmost untrusted hop
		{"192.0.2.9:5000", "203.0.113.7", "192.0.2.9:5000"},                       // not through a trusted proxy: ignored
		{"10.1.1.1:5000", "", "10.1.1.1:5000"},
		{"10.1.1.1:5000", "garbage", "10.1.1.1:5000"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if seen != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %s, want %s", c.peer, c.xff, seen, c.want)
		}
	}
}

// TestClientAddressScheme: a trusted proxy's X-Forwarded-Proto is the scheme
// the client used; anyone else's is ignored, and r.TLS decides.
func TestClientAddressScheme(t *testing.T) {
	var seen string
	h := clientAddress([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = bridge.RequestScheme(r)
	}))
	for _, c := range []struct{ url, peer, proto, want string }{
		{"http://hub.example/", "10.1.1.1:5000", "https", "https"},
		{"http://hub.example/", "10.1.1.1:5000", "HTTPS, http", "https"}, // the proxy facing the client
		{"https://hub.example/", "10.1.1.1:5000", "http", "http"},
		{"http://hub.example/", "10.1.1.1:5000", "gopher", "http"},
		{"http://hub.example/", "192.0.2.9:5000", "https", "http"}, // not a trusted proxy
		{"https://hub.example/", "192.0.2.9:5000", "http", "https"},
		{"https://hub.example/", "10.1.1.1:5000", "", "https"},
	} {
		r := httptest.NewRequest("GET", c.url, nil)
		r.RemoteAddr = c.peer
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if seen != c.want {
			t.Errorf("%s from %s, X-Forwarded-Proto %q: scheme %s, want %s", c.url, c.peer, c.proto, seen, c.want)
		}
	}
}
