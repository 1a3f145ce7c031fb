package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// webPage is what a browser showing a page of origin sends to the hub at addr
// when the page's host name resolves to the hub: Host host, Origin origin.
type webPage struct {
	addr   string // where the hub listens (host:port)
	scheme string // "http" or "https"
	tls    *tls.Config
	host   string      // the Host header
	origin string      // the Origin header
	header http.Header // more headers
}

// visit is a plain-HTTP page at host, the hub's own origin if the hub
// answers for host.
func visit(h *runningHub, host string) webPage {
	return webPage{addr: h.HTTP, scheme: "http", host: host, origin: "http://" + host}
}

// do sends a request and returns its status and, unless it is 200 (a
// stream may not end), its body.
func (p webPage) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hubtest.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.scheme+"://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = p.host
	req.Header.Set("Origin", p.origin)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	transport := &http.Transport{TLSClientConfig: p.tls}
	defer transport.CloseIdleConnections()
	resp, err := transport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s as %s: %v", method, path, p.origin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// dial opens a WebSocket on path, offering subprotocol; on a refused
// handshake it returns the status and body.
func (p webPage) dial(t *testing.T, path, subprotocol string) (status int, body string, err error) {
	t.Helper()
	header := http.Header{"Host": {p.host}, "Origin": {p.origin}}
	for k, v := range p.header {
		header[k] = v
	}
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, TLSClientConfig: p.tls, HandshakeTimeout: hubtest.Timeout}
	scheme := "ws"
	if p.scheme == "https" {
		scheme = "wss"
	}
	conn, resp, err := d.DialContext(t.Context(), scheme+"://"+p.addr+path, header)
	if err == nil {
		_ = conn.Close()
		return http.StatusSwitchingProtocols, "", nil
	}
	if resp == nil {
		t.Fatalf("WebSocket %s as %s: %v", path, p.origin, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// refused fails the test unless a request was refused with 403 and the
// JSON error "forbidden" whose message contains hint.
func refused(t *testing.T, what string, status int, body, hint string) {
	t.Helper()
	if status != http.StatusForbidden || errorCode(body) != "forbidden" || !strings.Contains(body, hint) {
		t.Errorf("%s: %d %s, want 403 with a JSON forbidden error mentioning %q", what, status, body, hint)
	}
}

// TestDNSRebindingHostIsRefused: a page of evil.example whose name the
// attacker made resolve to 127.0.0.1 is, to the browser, the same origin
// as the hub on loopback: without users it could read every value and
// switch every relay. Its Host header gives it away: every route refuses
// it, and its command never reaches the device. Loopback names, the names
// of --allow-host and the hosts of --allow-origin are answered; health
// checks whatever the name.
func TestDNSRebindingHostIsRefused(t *testing.T) {
	h := startHub(t)
	_, port, _ := net.SplitHostPort(h.HTTP)
	device := hubtest.ConnectMQTT(t, h.MQTT, "relay-mote")
	commands := hubtest.SubscribeMQTT(t, device, "nodes/+/relay/+/set", 1)

	evil := visit(h, "evil.example:"+port)
	const hint = "--allow-host"
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/api/state", ""},
		{"POST", "/api/publish", `["nodes/x/relay/r/set", {"state": true, "from": "evil"}]`},
		{"GET", "/api/history?topic=nodes/x/relay/r/set", ""},
		{"GET", "/api/poll?filter=%23&wait=0", ""},
		{"GET", "/events", ""},
		{"GET", "/", ""},
		{"GET", "/login", ""},
		{"GET", "/metrics", ""},
	} {
		status, body := evil.do(t, req.method, req.path, req.body)
		refused(t, req.method+" "+req.path+" from evil.example", status, body, hint)
	}
	for _, ws := range []struct{ path, subprotocol string }{{"/ws", "clown.talk"}, {"/mqtt", "mqtt"}} {
		status, body, err := evil.dial(t, ws.path, ws.subprotocol)
		if err == nil {
			t.Errorf("a %s handshake from evil.example was accepted", ws.path)
			continue
		}
		refused(t, ws.path+" handshake from evil.example", status, body, hint)
	}

	// The refused command never reached the device: a command sent after it
	// from the hub's own page arrives first.
	own := visit(h, h.HTTP)
	if status, body := own.do(t, "POST", "/api/publish", `["nodes/x/relay/r/set", {"state": false, "from": "own"}]`); status != http.StatusOK {
		t.Fatalf("publish from the hub's own page: %d %s", status, body)
	}
	if m := hubtest.Receive(t, commands, hubtest.Timeout, "the own page's command"); !strings.Contains(m.Payload, `"own"`) {
		t.Fatalf("the device received %s %s first: the page of evil.example switched the relay", m.Topic, m.Payload)
	}

	// Health checks name the hub by whatever address they reach it at.
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := evil.do(t, "GET", path, ""); status != http.StatusOK {
			t.Errorf("GET %s with another Host: %d %s, want 200", path, status, body)
		}
	}

	// Loopback names, with or without a port, are this machine.
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "localhost", "127.0.0.2:" + port, "dash.localhost:" + port} {
		p := visit(h, host)
		if status, body := p.do(t, "GET", "/api/state", ""); status != http.StatusOK {
			t.Errorf("GET /api/state as %s: %d %s, want 200", host, status, body)
		}
		if status, body, err := p.dial(t, "/ws", "clown.talk"); err != nil {
			t.Errorf("/ws as %s: %v %d %s", host, err, status, body)
		}
	}

	// A hub that really listens on [::1], reached by that name.
	t.Run("IPv6 loopback listener", func(t *testing.T) {
		ln, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			t.Skipf("!!! this machine has no IPv6 loopback (%v): the [::1] listener case is not run", err)
		}
		_ = ln.Close()
		h6 := startHub(t, "--http", "[::1]:0")
		if !strings.HasPrefix(h6.HTTP, "[::1]:") {
			t.Fatalf("the hub listens on %s, want [::1]", h6.HTTP)
		}
		p := visit(h6, h6.HTTP)
		if status, body := p.do(t, "GET", "/api/state", ""); status != http.StatusOK {
			t.Errorf("GET /api/state at %s: %d %s, want 200", h6.HTTP, status, body)
		}
		if status, body, err := p.dial(t, "/ws", "clown.talk"); err != nil {
			t.Errorf("/ws at %s: %v %d %s", h6.HTTP, err, status, body)
		}
		_, port6, _ := net.SplitHostPort(h6.HTTP)
		status, body := visit(h6, "evil.example:"+port6).do(t, "GET", "/api/state", "")
		refused(t, "GET /api/state from evil.example on [::1]", status, body, hint)
	})

	// Names the operator gives: --allow-host, and the host of --allow-origin.
	named := startHub(t, "--allow-host", "hub.lan", "--allow-origin", "https://dash.example")
	_, port, _ = net.SplitHostPort(named.HTTP)
	for _, host := range []string{"hub.lan:" + port, "HUB.lan", "dash.example:" + port} {
		p := visit(named, host)
		if status, body := p.do(t, "GET", "/api/state", ""); status != http.StatusOK {
			t.Errorf("GET /api/state as %s with --allow-host hub.lan --allow-origin https://dash.example: %d %s, want 200", host, status, body)
		}
		if status, body, err := p.dial(t, "/ws", "clown.talk"); err != nil {
			t.Errorf("/ws as %s: %v %d %s", host, err, status, body)
		}
	}
	status, body := visit(named, "evil.example:"+port).do(t, "GET", "/api/state", "")
	refused(t, "GET /api/state from evil.example with --allow-host hub.lan", status, body, hint)
}

// TestOriginSchemeMustMatch: the scheme is part of an origin. A page served
// over https is not the origin of a plain-HTTP hub on the same host and
// port (nor the reverse, on TLS), so it may not use the hub; behind a
// TLS-terminating proxy, the proxy's X-Forwarded-Proto decides, and only
// when the proxy is trusted.
func TestOriginSchemeMustMatch(t *testing.T) {
	type door struct {
		name string
		try  func(p webPage) (int, string, error)
	}
	doors := []door{
		{"GET /api/state", func(p webPage) (int, string, error) { s, b := p.do(t, "GET", "/api/state", ""); return s, b, nil }},
		{"POST /api/publish", func(p webPage) (int, string, error) {
			s, b := p.do(t, "POST", "/api/publish", `["lab/lamp/set", {"on": true}]`)
			return s, b, nil
		}},
		{"/ws", func(p webPage) (int, string, error) { return p.dial(t, "/ws", "clown.talk") }},
		{"/mqtt", func(p webPage) (int, string, error) { return p.dial(t, "/mqtt", "mqtt") }},
	}
	works := func(status int, err error) bool { return err == nil && (status == 200 || status == 101) }
	check := func(t *testing.T, p webPage, wantOK bool) {
		t.Helper()
		for _, d := range doors {
			status, body, err := d.try(p)
			switch {
			case wantOK && !works(status, err):
				t.Errorf("%s from %s (forwarded %q): %d %s %v, want it to work", d.name, p.origin, p.header.Get("X-Forwarded-Proto"), status, body, err)
			case !wantOK:
				if works(status, err) {
					t.Errorf("%s from %s (forwarded %q) was accepted", d.name, p.origin, p.header.Get("X-Forwarded-Proto"))
					continue
				}
				refused(t, d.name+" from "+p.origin, status, body, "")
			}
		}
	}

	t.Run("plain HTTP hub", func(t *testing.T) {
		h := startHub(t)
		p := visit(h, h.HTTP)
		check(t, p, true)
		p.origin = "https://" + h.HTTP
		check(t, p, false)
		// Anyone may write X-Forwarded-Proto: without --trusted-proxy it is ignored.
		p.header = http.Header{"X-Forwarded-Proto": {"https"}}
		check(t, p, false)
	})
	t.Run("TLS hub", func(t *testing.T) {
		certs := hubtest.NewTLSFiles(t, 1)
		h := startHub(t, "--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile)
		p := webPage{addr: h.HTTP, scheme: "https", tls: certs.ClientConfig(), host: h.HTTP, origin: "https://" + h.HTTP}
		check(t, p, true)
		p.origin = "http://" + h.HTTP
		check(t, p, false)
	})
	t.Run("behind a trusted TLS-terminating proxy", func(t *testing.T) {
		h := startHub(t, "--trusted-proxy", "127.0.0.1")
		p := visit(h, h.HTTP)
		p.header = http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"203.0.113.7"}}
		p.origin = "https://" + h.HTTP
		check(t, p, true)
		p.origin = "http://" + h.HTTP
		check(t, p, false)
	})
}
