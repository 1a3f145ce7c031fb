package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// motehub.js in headless Chromium, on a page of its own (not the
// dashboard) served by a reverse proxy in front of a whole hub: the page and
// the hub are one origin, as when a site serves its page beside the hub.

// jsPage is the page: it connects with motehub.js, from the hub's
// /motehub.js, with ?shared=1 through the shared worker, and records what
// the client emits in window.log; window.command(topic, payload) sends a
// command and notes its outcome in window.commands.
const jsPage = `<!doctype html>
<meta charset="utf-8">
<title>motehub.js</title>
<link rel="icon" href="data:,">
<script type="module">
import {connect} from "/motehub.js";
const shared = new URLSearchParams(location.search).get("shared") === "1";
window.log = {message: [], status: [], resync: [], error: [], device: [], session: []};
const hub = connect(location.origin, {shared, subscribe: ["jstest/#", "nodes/+/relay/#"]});
for (const name of Object.keys(log)) hub.on(name, (ev) => log[name].push(ev));
window.hub = hub;
window.lastStatus = () => log.status.at(-1) ?? {};
window.got = (topic) => log.message.filter((m) => m.topic === topic).map((m) => m.payload);
window.commands = [];
window.command = (topic, payload) => {
	const outcome = {done: false};
	commands.push(outcome);
	hub.command(topic, payload).then(
		(r) => Object.assign(outcome, {done: true, ok: r.ok, ms: r.ms}),
		(e) => Object.assign(outcome, {done: true, ok: false, code: e.code, message: String(e.message)}));
	return commands.length - 1;
};
</script>
`

// jsProxy is the reverse proxy: it serves jsPage at /jstest.html and hands
// everything else to the hub, or, with refuseUpgrade, answers 403 to every
// WebSocket handshake, as a proxy that does not pass Upgrade does.
type jsProxy struct {
	URL           string
	refuseUpgrade bool
	refused       atomic.Int64 // WebSocket handshakes refused
}

func startJSProxy(t *testing.T, h *runningHub, refuseUpgrade bool) *jsProxy {
	t.Helper()
	hub, err := url.Parse("http://" + h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	p := &jsProxy{refuseUpgrade: refuseUpgrade}
	forward := httputil.NewSingleHostReverseProxy(hub) // keeps the Host: the page's origin is the hub's
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/jstest.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(jsPage))
		case p.refuseUpgrade && websocket.IsWebSocketUpgrade(r):
			p.refused.Add(1)
			http.Error(w, "this proxy does not pass WebSocket", http.StatusForbidden)
		default:
			forward.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// openJSPage loads the page in tab b (query "?shared=1" or "") and waits
// until its client is open.
func openJSPage(t *testing.T, b *hubtest.Browser, p *jsProxy, query string) {
	t.Helper()
	b.Do(t, chromedp.Navigate(p.URL+"/jstest.html"+query))
	b.WaitJS(t, hubtest.Timeout, `window.hub !== undefined && lastStatus().state === "open"`,
		`JSON.stringify(window.log ?? null)`)
}

// TestMotehubJSTabsShareOneSocket: two tabs of a page that connects with
// shared: true have one WebSocket session at the hub between them, and
// both get a device's message; a third tab without sharing opens a second
// session (so the count is the hub's, not a number that cannot move).
func TestMotehubJSTabsShareOneSocket(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	p := startJSProxy(t, h, false)
	first := hubtest.NewBrowser(t)
	openJSPage(t, first, p, "?shared=1")
	second := first.NewTab(t)
	openJSPage(t, second, p, "?shared=1")
	sessions := func(want float64) {
		t.Helper()
		hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
			if n := metric(t, h, `motehub_sessions{transport="ws"}`); n != want {
				return fmt.Errorf("the hub has %v WebSocket sessions, want %v", n, want)
			}
			return nil
		})
	}
	sessions(1)

	device := hubtest.ConnectMQTT(t, h.MQTT, "jstest-device")
	hubtest.PublishMQTT(t, device, "jstest/hello", 1, false, []byte(`{"n":1}`))
	for _, tab := range []*hubtest.Browser{first, second} {
		tab.WaitJS(t, hubtest.Timeout, `got("jstest/hello").length === 1 && got("jstest/hello")[0].n === 1`, `JSON.stringify(got("jstest/hello"))`)
	}
	sessions(1)

	third := first.NewTab(t)
	openJSPage(t, third, p, "")
	sessions(2)
	for _, tab := range []*hubtest.Browser{first, second, third} {
		checkConsole(t, tab)
	}
}

// TestMotehubJSFallsBackToSSE: behind a proxy that refuses WebSocket, the
// client falls back to SSE with the same events: it receives a device's
// message, the device model's changes and who the session is, and sends a
// command that the device (the demo's relay) confirms.
func TestMotehubJSFallsBackToSSE(t *testing.T) {
	t.Parallel()
	h := startHub(t, "--demo")
	p := startJSProxy(t, h, true)
	b := hubtest.NewBrowser(t)
	openJSPage(t, b, p, "")
	if p.refused.Load() == 0 {
		t.Fatal("the page's client is open but never tried a WebSocket")
	}
	if transport := hubtest.Eval[string](t, b, `lastStatus().transport`); transport != "sse" {
		t.Errorf("the client is open over %q, want sse", transport)
	}
	if n := metric(t, h, `motehub_sessions{transport="sse"}`); n != 1 {
		t.Errorf("the hub has %v SSE sessions, want 1", n)
	}

	device := hubtest.ConnectMQTT(t, h.MQTT, "jstest-device")
	hubtest.PublishMQTT(t, device, "jstest/hello", 1, false, []byte(`{"n":2}`))
	b.WaitJS(t, hubtest.Timeout, `got("jstest/hello").length === 1 && got("jstest/hello")[0].n === 2`, `JSON.stringify(got("jstest/hello"))`)
	// The demo's devices change every second.
	b.WaitJS(t, hubtest.Timeout, `log.device.some((d) => typeof d.id === "string" && Array.isArray(d.entities))`, `JSON.stringify(log.device.slice(-3))`)
	b.WaitJS(t, hubtest.Timeout, `log.session.length > 0 && hub.session?.user === "anonymous" && hub.session.open === true`, `JSON.stringify(log.session)`)

	// The relay's state now, from the hub (state() over HTTP), and the
	// command that switches it.
	hubtest.Eval[bool](t, b, `hub.state("`+relay+`").then((v) => { window.relayNow = v; }, (e) => { window.relayNow = String(e); }); true`)
	b.WaitJS(t, hubtest.Timeout, `window.relayNow !== undefined`, `typeof window.relayNow`)
	want := !hubtest.Eval[bool](t, b, `relayNow.find((v) => v.topic === "`+relay+`").payload.state`)
	watcher := hubtest.ConnectMQTT(t, h.MQTT, "jstest-watcher")
	sent := hubtest.SubscribeMQTT(t, watcher, relay+"/set", 1)
	i := hubtest.Eval[int](t, b, fmt.Sprintf(`command(%q, {state: %t})`, relay+"/set", want))
	if m := hubtest.Receive(t, sent, hubtest.Timeout, "the command at the device"); m.Payload != fmt.Sprintf(`{"state":%t}`, want) {
		t.Fatalf("the device got %s", m.Payload)
	}
	outcome := fmt.Sprintf("commands[%d]", i)
	b.WaitJS(t, hubtest.Timeout, outcome+".done", "JSON.stringify("+outcome+")")
	if ok := hubtest.Eval[bool](t, b, outcome+".ok"); !ok {
		t.Fatalf("the command over SSE: %s, want ok", hubtest.Eval[string](t, b, "JSON.stringify("+outcome+")"))
	}
	if transport := hubtest.Eval[string](t, b, `lastStatus().transport`); transport != "sse" {
		t.Errorf("after the command the client is on %q, want sse", transport)
	}
	checkConsole(t, b, regexpWebSocketRefused)
}

// regexpWebSocketRefused is the console error Chromium logs for a WebSocket
// handshake the proxy refuses.
var regexpWebSocketRefused = regexp.MustCompile(`WebSocket connection to .* failed`)
