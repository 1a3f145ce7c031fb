package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// The dashboard in a real headless Chromium, against a whole hub running the
// demo's simulated motes in-process. The tests look at what a person sees
// (tiles, badges, the state of controls) through the page's DOM.

// pageHelpers are shorthands the tests evaluate in the page.
const pageHelpers = `
window.tile = (topic) => document.querySelector('.tile[data-topic="' + topic + '"]');
window.tileText = (topic, sel) => tile(topic)?.querySelector(sel)?.textContent ?? "";
window.connState = () => document.getElementById("connection").dataset.state;
// recordCommands notes every state the page learns for the commands to a
// tile's device, with when. (The page draws at most once per frame, so a
// command confirmed within a frame never shows as pending.)
window.recordCommands = (topic) => {
	const seen = [], apply = motehub.store.apply.bind(motehub.store);
	motehub.store.apply = (ev) => {
		if (ev.type === "command" && ev.command.topic === topic + "/set") seen.push({s: ev.command.state, t: performance.now()});
		apply(ev);
	};
	return seen;
};
// historyLoaded: every chart, of a topic's tile or of a model entity's
// field, has had its history from the hub.
window.historyLoaded = () => [...motehub.store.tiles.values()].every(t => t.info.kind !== "number" || t.history === "done") &&
  [...motehub.store.entitySeries.values()].every(s => s.info ? s.info.kind !== "number" || s.history === "done" : !s.topic || s.history === "done");
true`

// openDashboard loads the dashboard of h in tab b (query: "" or "?shared=0")
// and waits until it is live.
func openDashboard(t testing.TB, b *hubtest.Browser, h *runningHub, query string) {
	t.Helper()
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/"+query))
	b.WaitJS(t, hubtest.Timeout, `window.motehub !== undefined`, `document.documentElement.outerHTML.slice(0, 400)`)
	hubtest.Eval[bool](t, b, pageHelpers)
	b.WaitJS(t, hubtest.Timeout, `connState() === "live"`, `connState()`)
}

// checkConsole fails the test for any console error or uncaught exception
// in the page but those allowed.
func checkConsole(t testing.TB, b *hubtest.Browser, allowed ...*regexp.Regexp) {
	t.Helper()
next:
	for _, e := range b.Errors() {
		for _, re := range allowed {
			if re.MatchString(e) {
				t.Logf("console error, expected: %s", e)
				continue next
			}
		}
		t.Errorf("console error: %s", e)
	}
}

// waitHistory waits until the hub keeps at least n messages of topic.
func waitHistory(t *testing.T, h *runningHub, topic string, n int) {
	t.Helper()
	client := &http.Client{Timeout: hubtest.Timeout}
	defer client.CloseIdleConnections()
	hubtest.Eventually(t, 3*hubtest.Timeout, func() bool {
		resp, err := client.Get("http://" + h.HTTP + "/api/history?topic=" + topic)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct{ Values []json.RawMessage }
		return json.NewDecoder(resp.Body).Decode(&body) == nil && len(body.Values) >= n
	}, "the hub has fewer than %d messages of %s", n, topic)
}

const (
	temperature = "nodes/mote-1/thermometer/0:1/temperature"
	relay       = "nodes/mote-1/relay/i2c0-3b"
	led         = "nodes/mote-1/led/-/state"
)

// TestDashboardShowsDemo: the demo's motes appear as devices with their
// tiles; the temperature shows with its unit and a chart that a fresh page
// seeds from the hub's history; values change over time; nothing is stale.
func TestDashboardShowsDemo(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	h := startHub(t, "--demo")
	waitHistory(t, h, temperature, 3)
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")

	// The motes, in order, and one device of each other convention the
	// demo simulates, each a card of the hub's device model.
	b.WaitJS(t, hubtest.Timeout, `document.querySelectorAll(".device-card[data-convention=hardwario]").length === 3`,
		`[...document.querySelectorAll(".device-card")].map(d => d.dataset.deviceId)`)
	if got := hubtest.Eval[string](t, b, `[...document.querySelectorAll(".device-card[data-convention=hardwario] .device-name")].map(e => e.textContent).join(" ")`); got != "mote-1 mote-2 mote-3" {
		t.Errorf("motes %q, want mote-1 mote-2 mote-3 in order", got)
	}
	for _, convention := range []string{"homeassistant", "zigbee2mqtt", "tasmota", "homie"} {
		b.WaitJS(t, hubtest.Timeout, `document.querySelector(".device-card[data-convention=`+convention+`]") !== null`,
			`[...document.querySelectorAll(".device-card")].map(d => d.dataset.deviceId)`)
	}
	for _, topic := range []string{temperature, "nodes/mote-1/asn", "nodes/mote-1/pir/-/event-count", relay, "nodes/mote-1/relay/i2c0-3c", led, "nodes/mote-1/boot"} {
		b.WaitJS(t, hubtest.Timeout, `tile("`+topic+`") !== null`, `[...document.querySelectorAll(".tile")].map(e => e.dataset.topic)`)
	}

	value := hubtest.Eval[string](t, b, `tileText("`+temperature+`", ".tile-value")`)
	if !regexp.MustCompile(`^-?\d+(\.\d)? °C$`).MatchString(value) {
		t.Errorf("temperature shows %q, want a number and °C", value)
	}
	// The chart starts from the hub's history: at least the 3 messages the
	// hub had before the page opened.
	b.WaitJS(t, hubtest.Timeout, `Number(tile("`+temperature+`").querySelector(".chart").dataset.seeded) >= 3`,
		`tile("`+temperature+`").querySelector(".chart").dataset.seeded`)
	if kind := hubtest.Eval[string](t, b, `tile("`+relay+`").dataset.kind + " " + tileText("`+relay+`", ".badge")`); kind != "switch off" {
		t.Errorf("relay tile: %q, want a switch showing off", kind)
	}
	if boot := hubtest.Eval[string](t, b, `tileText("nodes/mote-1/boot", ".tile-value")`); !strings.Contains(boot, "fw 1.0.0") {
		t.Errorf("boot tile shows %q", boot)
	}

	// Values change: the ASN counts slots, the temperature chart grows.
	asn := hubtest.Eval[string](t, b, `tileText("nodes/mote-1/asn", ".tile-value")`)
	points := hubtest.Eval[string](t, b, `tile("`+temperature+`").querySelector(".chart").dataset.points`)
	b.WaitJS(t, hubtest.Timeout, `tileText("nodes/mote-1/asn", ".tile-value") !== "`+asn+`"`, `tileText("nodes/mote-1/asn", ".tile-value")`)
	b.WaitJS(t, hubtest.Timeout, `Number(tile("`+temperature+`").querySelector(".chart").dataset.points) > `+points,
		`tile("`+temperature+`").querySelector(".chart").dataset.points`)
	if stale := hubtest.Eval[int](t, b, `document.querySelectorAll(".device.stale").length`); stale != 0 {
		t.Errorf("%d devices look stale while the demo runs", stale)
	}

	// The Home Assistant device says its area (suggested_area): the sort by
	// area is offered, and puts the one device with an area first.
	b.WaitJS(t, hubtest.Timeout, `!document.querySelector(".device-sort option[value=area]").hidden`,
		`document.querySelector(".device-sort").outerHTML`)
	b.Do(t, chromedp.SetValue(chromedp.CSS(".device-sort"), "area"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(".device-sort").dispatchEvent(new Event("change"))`))
	b.WaitJS(t, hubtest.Timeout, `document.querySelector(".device-card:not([hidden])").dataset.convention === "homeassistant"`,
		`[...document.querySelectorAll(".device-card")].map(d => d.dataset.deviceId)`)
	checkConsole(t, b)
}

// TestDashboardRelayCommand: clicking a relay's button sends the command
// (an MQTT subscriber sees it), the control goes pending, then confirmed
// once the mote echoes its state; the LED works from the keyboard alone.
func TestDashboardRelayCommand(t *testing.T) {
	t.Parallel()
	h := startHub(t, "--demo")
	watcher := hubtest.ConnectMQTT(t, h.MQTT, "dashboard-watcher")
	commands := hubtest.SubscribeMQTT(t, watcher, "nodes/+/#", 1)
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	b.WaitJS(t, hubtest.Timeout, `tileText("`+relay+`", ".badge") === "off"`, `tileText("`+relay+`", ".badge")`)

	hubtest.Eval[bool](t, b, `window.relaySeen = recordCommands("`+relay+`"); true`)
	b.Do(t, chromedp.Click(chromedp.CSS(`.tile[data-topic="`+relay+`"] button`)))
	// The demo's motes publish all the time on nodes/+/#: the wait for the
	// command has a deadline of its own, not only one per message.
	deadline := time.Now().Add(hubtest.Timeout)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no command on %s/set within %v of the click", relay, hubtest.Timeout)
		}
		m := hubtest.Receive(t, commands, hubtest.Timeout, "the relay command at an MQTT subscriber")
		if m.Topic == relay+"/set" {
			if m.Payload != `{"state":true}` {
				t.Fatalf("command payload %s, want {\"state\":true}", m.Payload)
			}
			break
		}
	}
	// The ack follows the echo in the session's stream, but a device card's
	// badge shows the device model's value, which the hub updates after the
	// fan-out, on its model's goroutine: it may come after the "ok".
	b.WaitJS(t, hubtest.Timeout, `tile("`+relay+`").dataset.command === "ok" && tileText("`+relay+`", ".badge") === "on"`, `JSON.stringify(relaySeen)`)
	if states := hubtest.Eval[string](t, b, `relaySeen.map(e => e.s).join(",")`); states != "pending,ok" {
		t.Errorf("the control went through %q, want pending,ok", states)
	}
	if got := hubtest.Eval[string](t, b, `tileText("`+relay+`", ".badge") + " | " + tileText("`+relay+`", "button") + " | " + tileText("`+relay+`", ".command-status")`); !strings.HasPrefix(got, "on | Turn off | Confirmed in ") {
		t.Errorf("after the echo the tile shows %q", got)
	}

	// The keyboard: focus the LED's button and press Enter.
	hubtest.Eval[bool](t, b, `window.ledSeen = recordCommands("`+led+`"); true`)
	b.Do(t, chromedp.Focus(chromedp.CSS(`.tile[data-topic="`+led+`"] button`)), chromedp.KeyEvent("\r"))
	b.WaitJS(t, hubtest.Timeout, `tile("`+led+`").dataset.command === "ok" && tileText("`+led+`", ".badge") === "on"`, `JSON.stringify(ledSeen)`)
	checkConsole(t, b)
}

// TestDashboardCommandFailsWithoutDevice: a relay whose device does not
// answer (a retained state with no simulator behind it) shows the command
// pending, then failed with the reason once the hub's ack timeout passes;
// the badge keeps showing what the device last reported.
func TestDashboardCommandFailsWithoutDevice(t *testing.T) {
	const ghost = "nodes/ghost/relay/i2c0-3b"
	h := startHub(t, "--demo", "--ack-timeout", "500ms")
	device := hubtest.ConnectMQTT(t, h.MQTT, "ghost-publisher")
	hubtest.PublishMQTT(t, device, ghost, 1, true, []byte(`{"state":false}`))
	hubtest.PublishMQTT(t, device, "nodes/ghost/pir/-/motion", 1, true, []byte(`true`))
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	b.WaitJS(t, hubtest.Timeout, `tile("`+ghost+`") !== null && tile("nodes/ghost/pir/-/motion") !== null`, `[...document.querySelectorAll(".tile")].map(e => e.dataset.topic)`)
	// A boolean that is no state (not {"state": …}, not on a topic named
	// state) is shown, with no button to command it.
	if got := hubtest.Eval[string](t, b, `tileText("nodes/ghost/pir/-/motion", ".badge") + " " + (tile("nodes/ghost/pir/-/motion").querySelector("button") === null)`); got != "on true" {
		t.Errorf("a motion sensor's boolean shows as %q, want a badge on and no button", got)
	}

	hubtest.Eval[bool](t, b, `window.ghostSeen = recordCommands("`+ghost+`"); true`)
	b.Do(t, chromedp.Click(chromedp.CSS(`.tile[data-topic="`+ghost+`"] button`)))
	b.WaitJS(t, hubtest.Timeout, `tile("`+ghost+`").dataset.command === "pending"`, `JSON.stringify(ghostSeen)`)
	if got := hubtest.Eval[string](t, b, `tileText("`+ghost+`", ".command-status") + " | " + tileText("`+ghost+`", ".badge")`); got != "Waiting for the device… | off" {
		t.Errorf("while the command waits the tile shows %q", got)
	}
	b.WaitJS(t, hubtest.Timeout, `tile("`+ghost+`").dataset.command === "failed"`, `JSON.stringify(ghostSeen)`)
	seen := hubtest.Eval[[]struct {
		S string
		T float64
	}](t, b, `ghostSeen`)
	if len(seen) != 2 || seen[0].S != "pending" || seen[1].S != "failed" {
		t.Fatalf("the control went through %+v, want pending then failed", seen)
	}
	if waited := time.Duration(seen[1].T-seen[0].T) * time.Millisecond; waited < 400*time.Millisecond {
		t.Errorf("failed %v after it was sent, before the 500ms ack timeout", waited)
	}
	if got := hubtest.Eval[string](t, b, `tileText("`+ghost+`", ".command-status") + " | " + tileText("`+ghost+`", ".badge")`); got != "Failed: no answer | off" {
		t.Errorf("after the timeout the tile shows %q", got)
	}
	checkConsole(t, b)
}

// TestDashboardSurvivesHubRestart: when the hub stops, the page says it is
// reconnecting; when a new hub starts on the same address, the page
// reconnects by itself (no reload), learns it missed messages (resync), and
// values flow again. Both with the shared worker and with a connection of
// the tab's own.
func TestDashboardSurvivesHubRestart(t *testing.T) {
	for _, mode := range []struct{ name, query string }{{"shared", ""}, {"direct", "?shared=0"}} {
		t.Run(mode.name, func(t *testing.T) {
			first := startHub(t, "--demo")
			b := hubtest.NewBrowser(t)
			openDashboard(t, b, first, mode.query)
			if got := hubtest.Eval[string](t, b, `motehub.mode()`); got != mode.name {
				t.Fatalf("connection mode %q, want %q", got, mode.name)
			}
			// Every card of the demo, and their charts' histories, before the
			// hub stops: else a history asked for while it is away is a
			// refused connection in the console.
			b.WaitJS(t, hubtest.Timeout, `document.querySelectorAll(".device-card[data-convention=hardwario] .tile").length === 21 && `+
				`["homeassistant", "zigbee2mqtt", "tasmota", "homie"].every(c => document.querySelector(".device-card[data-convention=" + c + "]")) && historyLoaded()`,
				`document.querySelectorAll(".device-card[data-convention=hardwario] .tile").length + " " + [...document.querySelectorAll(".device-card")].map(c => c.dataset.convention)`)
			hubtest.Eval[bool](t, b, `window.notReloaded = true`)

			if err := first.Stop(); err != nil {
				t.Fatal(err)
			}
			b.WaitJS(t, hubtest.Timeout, `connState() === "reconnecting"`, `connState()`)
			second := startHub(t, "--demo", "--http", first.HTTP)
			b.WaitJS(t, 20*time.Second, `connState() === "live"`, `JSON.stringify(motehub.store.status)`)
			if !hubtest.Eval[bool](t, b, `window.notReloaded === true && motehub.store.status.resumed === "resynced"`) {
				t.Fatalf("after the restart: reloaded or no resync; status %s", hubtest.Eval[string](t, b, `JSON.stringify(motehub.store.status)`))
			}
			// Values from the new hub's motes arrive.
			live := hubtest.Eval[float64](t, b, `Date.now()`)
			b.WaitJS(t, hubtest.Timeout, fmt.Sprintf(`motehub.store.tiles.get("nodes/mote-1/asn").time > %f`, live), `motehub.store.tiles.get("nodes/mote-1/asn").time`)
			asn := hubtest.Eval[string](t, b, `tileText("nodes/mote-1/asn", ".tile-value")`)
			b.WaitJS(t, hubtest.Timeout, `tileText("nodes/mote-1/asn", ".tile-value") !== "`+asn+`"`, `tileText("nodes/mote-1/asn", ".tile-value")`)
			_ = second

			// While the hub was away, Chromium logs each refused connection
			// attempt of the page's WebSocket as an error: those are expected,
			// and the only errors allowed. (The shared worker's attempts are
			// logged in the worker, which is not this page.)
			checkConsole(t, b, regexp.MustCompile(`WebSocket connection to 'ws://`+regexp.QuoteMeta(first.HTTP)+`/ws' failed`))
		})
	}
}

// TestDashboardResumesAfterDrop: when the page's WebSocket drops (closed
// here under the page's feet), the page reconnects at once and resumes from
// the last event it had: no resync, not one message missed or repeated.
func TestDashboardResumesAfterDrop(t *testing.T) {
	t.Parallel()
	h := startHub(t, "--demo")
	b := hubtest.NewBrowser(t)
	ctx, cancel := context.WithTimeout(b.Ctx, hubtest.Timeout)
	defer cancel()
	// Keep a hand on the page's sockets (a tab's own connection: ?shared=0).
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		window.sockets = [];
		window.WebSocket = class extends WebSocket {
			constructor(...args) { super(...args); sockets.push(this); }
		};`}); err != nil {
		t.Fatal(err)
	}
	openDashboard(t, b, h, "?shared=0")
	hubtest.Eval[bool](t, b, `
		window.ids = [];
		const apply = motehub.store.apply.bind(motehub.store);
		motehub.store.apply = (ev) => {
			if (ev.type === "lines") for (const l of ev.lines) if (l.id) ids.push(l.id);
			apply(ev);
		};
		true`)
	b.WaitJS(t, hubtest.Timeout, `ids.length >= 10`, `ids.length`)
	hubtest.Eval[bool](t, b, `window.before = ids.length; sockets[0].close(); true`)
	b.WaitJS(t, hubtest.Timeout, `sockets.length === 2 && connState() === "live" && ids.length > before + 10`,
		`JSON.stringify({sockets: sockets.length, state: connState(), ids: ids.length})`)
	if resumed := hubtest.Eval[string](t, b, `motehub.store.status.resumed`); resumed != "resumed" {
		t.Fatalf("the second session started %q, want resumed", resumed)
	}
	ids := hubtest.Eval[[]string](t, b, `ids`)
	epoch, _, _ := strings.Cut(ids[0], "-")
	var prev int
	for i, id := range ids {
		var seq int
		if e, s, _ := strings.Cut(id, "-"); e != epoch || func() error { _, err := fmt.Sscan(s, &seq); return err }() != nil {
			t.Fatalf("id %q: not of epoch %s", id, epoch)
		}
		if i > 0 && seq != prev+1 && nextEventFor(t, h, "#", ids[i-1]) != id {
			t.Fatalf("after event %d came %d: messages missed or repeated across the drop (ids %v)", prev, seq, ids)
		}
		prev = seq
	}
	checkConsole(t, b)
}

// nextEventFor asks the hub's log (the long poll, not waiting) for the id of
// the first event after since that filter matches: the ids a session gets
// skip the events it does not want, such as the hub's own $SYS messages,
// which # does not match.
func nextEventFor(t *testing.T, h *runningHub, filter, since string) string {
	t.Helper()
	resp, err := http.Get("http://" + h.HTTP + "/api/poll?wait=0&filter=" + url.QueryEscape(filter) + "&since=" + url.QueryEscape(since))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Messages []json.RawMessage
		Resync   any
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || res.Resync != nil || len(res.Messages) == 0 {
		t.Fatalf("poll after %s: %v, resync %v, %d messages", since, err, res.Resync, len(res.Messages))
	}
	var line []json.RawMessage
	var meta struct{ ID string }
	if err := json.Unmarshal(res.Messages[0], &line); err != nil || len(line) != 3 || json.Unmarshal(line[2], &meta) != nil {
		t.Fatalf("poll after %s: first message %s has no id", since, res.Messages[0])
	}
	return meta.ID
}

// TestDashboardTabsShareOneSession: two tabs of one browser share the
// worker's one WebSocket session (the hub logs one session), both show the
// devices, and a command from one tab shows its outcome in both.
func TestDashboardTabsShareOneSession(t *testing.T) {
	t.Parallel()
	h := startHub(t, "--demo")
	first := hubtest.NewBrowser(t)
	openDashboard(t, first, h, "")
	second := first.NewTab(t)
	openDashboard(t, second, h, "")

	for _, tab := range []*hubtest.Browser{first, second} {
		if mode := hubtest.Eval[string](t, tab, `motehub.mode()`); mode != "shared" {
			t.Fatalf("tab connection mode %q, want shared", mode)
		}
		tab.WaitJS(t, hubtest.Timeout, `motehub.store.status.tabs === 2 && tile("`+relay+`") !== null`, `JSON.stringify(motehub.store.status)`)
	}
	second.Do(t, chromedp.Click(chromedp.CSS(`.tile[data-topic="`+relay+`"] button`)))
	for _, tab := range []*hubtest.Browser{first, second} {
		tab.WaitJS(t, hubtest.Timeout, `tile("`+relay+`").dataset.command === "ok" && tileText("`+relay+`", ".badge") === "on"`, `tile("`+relay+`").dataset.command`)
	}

	sessions := regexp.MustCompile(`msg="session opened" .*transport=ws`).FindAllString(h.Log.String(), -1)
	if len(sessions) != 1 {
		t.Fatalf("the hub opened %d WebSocket sessions for two tabs, want 1:\n%s", len(sessions), strings.Join(sessions, "\n"))
	}
	checkConsole(t, first)
	checkConsole(t, second)
}

// TestDashboardPublishByHand: the publish form sends a JSON payload to a
// topic (an MQTT subscriber gets it), refuses what is not JSON, and shows
// the hub's refusal; the message log shows the line and filters by topic.
func TestDashboardPublishByHand(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	h := startHub(t)
	watcher := hubtest.ConnectMQTT(t, h.MQTT, "publish-watcher")
	got := hubtest.SubscribeMQTT(t, watcher, "manual/#", 1)
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	publish := func(topic, payload string) string {
		b.Do(t,
			chromedp.SetValue(chromedp.ID("publish-topic"), topic),
			chromedp.SetValue(chromedp.ID("publish-payload"), payload),
			chromedp.Click(chromedp.CSS(`.publish-form button[type=submit]`)),
		)
		return hubtest.Eval[string](t, b, `document.querySelector(".publish-result").textContent`)
	}

	if result := publish("manual/x", `{"a": [1, 2]}`); result != "Sent manual/x to the hub." {
		t.Errorf("after publishing the form says %q", result)
	}
	if m := hubtest.Receive(t, got, hubtest.Timeout, "the published message"); m.Topic != "manual/x" || m.Payload != `{"a":[1,2]}` {
		t.Errorf("subscriber got %s %s", m.Topic, m.Payload)
	}
	b.WaitJS(t, hubtest.Timeout, `[...document.querySelectorAll(".line.out .line-topic")].some(e => e.textContent === "manual/x")`,
		`document.querySelector(".log-lines").textContent.slice(0, 300)`)
	// The device side of it: what an MQTT client publishes arrives in the log.
	hubtest.PublishMQTT(t, watcher, "manual/y", 1, false, []byte(`42`))
	b.WaitJS(t, hubtest.Timeout, `[...document.querySelectorAll(".line.in .line-topic")].some(e => e.textContent === "manual/y")`,
		`document.querySelector(".log-lines").textContent.slice(0, 300)`)

	b.Do(t, chromedp.SendKeys(chromedp.CSS(".log-filter"), "manual/+"))
	b.WaitJS(t, hubtest.Timeout, `[...document.querySelectorAll(".log-lines .line-topic")].map(e => e.textContent).join() === "manual/y,manual/x,manual/x"`,
		`[...document.querySelectorAll(".log-lines .line-topic")].map(e => e.textContent).join()`)

	if result := publish("manual/x", `{oops`); !strings.HasPrefix(result, "The payload is not JSON") {
		t.Errorf("with a payload that is not JSON the form says %q", result)
	}
	publish("$SYS/x", `1`)
	b.WaitJS(t, hubtest.Timeout, `document.querySelector(".publish-result").textContent.includes("reserved for the broker")`,
		`document.querySelector(".publish-result").textContent`)
	b.WaitJS(t, hubtest.Timeout, `document.querySelector(".notice.error") !== null`, `document.getElementById("notices").textContent`)
	checkConsole(t, b)
}

// TestDashboardModules: the pure modules' rules, run in Chromium: which
// device a topic belongs to, tile labels, values with their units, filters.
func TestDashboardModules(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	h := startHub(t)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/"))
	ctx, cancel := context.WithTimeout(b.Ctx, hubtest.Timeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(async () => {
		const t = await import("/assets/js/topics.js");
		const v = await import("/assets/js/values.js");
		const store = await import("/assets/js/store.js");
		const dev = (topic) => { const d = t.deviceOf(topic); return d.key + " | " + d.name + " | " + d.rest; };
		return {
			dev3: dev("nodes/mote-1/thermometer/0:1/temperature"),
			dev2: dev("demo/a"),
			dev1: dev("lonely"),
			labelThermo: t.labelOf("thermometer/0:1/temperature"),
			labelLED: t.labelOf("led/-/state"),
			labelRelay: t.labelOf("relay/i2c0-3b"),
			temp: v.formatValue([21.5, "°C"], "en-US"),
			big: v.formatValue(123456789, "en-US"),
			relay: v.formatValue({state: true}),
			obj: v.formatValue({fw: "1.0.0", reason: "power-on"}),
			bin: v.formatValue({$base64: "/wAQ"}),
			filters: [t.matchFilter("nodes/+/relay/#", "nodes/m/relay/x"), t.matchFilter("#", "$SYS/x"), t.matchFilter("a/#", "a"), t.matchFilter("a/+", "a/b/c")].join(),
			stale: (() => {
				// A device is stale after four times its pace, at least 30 s;
				// after 2 min while its pace is unknown; never while offline.
				const s = new (store.Store)(async () => []);
				const now = Date.now();
				s.apply({type: "status", status: {state: "live"}});
				s.apply({type: "lines", lines: [0, 1, 2, 3].map(i => ({dir: "in", topic: "n/fast/x", payload: i, time: now - 40000 + i * 1000}))});
				s.apply({type: "state", values: [{topic: "n/slow/x", payload: 1, time: now - 60000}]});
				const fast = s.devices.get("n/fast"), slow = s.devices.get("n/slow");
				const out = [s.staleAfter(fast), s.isStale(fast, now), s.staleAfter(slow), s.isStale(slow, now), s.isStale(slow, now + 61000)];
				s.apply({type: "status", status: {state: "reconnecting"}});
				out.push(s.isStale(slow, now + 61000));
				return out.join();
			})(),
		};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"dev3":        "nodes/mote-1 | mote-1 | thermometer/0:1/temperature",
		"dev2":        "demo | demo | a",
		"dev1":        "lonely | lonely | lonely",
		"labelThermo": "thermometer temperature",
		"labelLED":    "led",
		"labelRelay":  "relay i2c0-3b",
		"temp":        "21.5 °C",
		"big":         "123,456,789",
		"relay":       "on",
		"obj":         "fw 1.0.0 · reason power-on",
		"bin":         "binary, 3 bytes",
		"filters":     "true,false,true,false",
		"stale":       "30000,true,120000,false,true,false",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	checkConsole(t, b)
}

// TestDashboardScreenshot takes the README's picture: the demo at 1280×800,
// once the charts have some history. With -update it writes
// docs/dashboard.png; with HUB_SCREENSHOTS=DIR it also writes a phone-sized
// one there, for looking at.
func TestDashboardScreenshot(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	h := startHub(t, "--demo")
	waitHistory(t, h, "nodes/mote-3/thermometer/0:1/temperature", 12)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.EmulateViewport(1280, 800))
	openDashboard(t, b, h, "")
	b.WaitJS(t, hubtest.Timeout, `[...document.querySelectorAll(".chart")].filter(c => c.dataset.points >= 12).length >= 3`, `document.querySelectorAll(".chart").length`)
	b.Do(t, chromedp.Click(chromedp.CSS(`.tile[data-topic="nodes/mote-1/relay/i2c0-3c"] button`)))
	b.WaitJS(t, hubtest.Timeout, `tile("nodes/mote-1/relay/i2c0-3c").dataset.command === "ok"`, `tile("nodes/mote-1/relay/i2c0-3c").dataset.command`)
	b.Do(t, chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`)) // the click scrolled its tile into view

	saveScreenshot(t, screenshot(t, b), "dashboard.png")
	if dir := os.Getenv("HUB_SCREENSHOTS"); dir != "" {
		b.Do(t, chromedp.Evaluate[chromedp.Void](`scrollTo(0, 10000)`))
		writeFile(t, filepath.Join(dir, "dashboard-desktop-2.png"), screenshot(t, b))
		b.Do(t, chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))
		b.Do(t, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		b.WaitJS(t, hubtest.Timeout, `innerWidth === 390`, `innerWidth`)
		writeFile(t, filepath.Join(dir, "dashboard-phone.png"), screenshot(t, b))
		b.Do(t, chromedp.Evaluate[chromedp.Void](`scrollTo(0, 100000)`))
		writeFile(t, filepath.Join(dir, "dashboard-phone-2.png"), screenshot(t, b))
	}
	checkConsole(t, b)
}

func screenshot(t *testing.T, b *hubtest.Browser) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, hubtest.Timeout)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	return shot
}

// saveScreenshot checks that shot is a 1280×800 PNG and writes it as
// docs/name with -update, and as $HUB_SCREENSHOTS/name when that is set.
func saveScreenshot(t *testing.T, shot []byte, name string) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if size := img.Bounds().Size(); size.X != 1280 || size.Y != 800 {
		t.Fatalf("screenshot %s is %v, want 1280×800", name, size)
	}
	if *update {
		writeFile(t, filepath.Join("..", "..", "docs", name), shot)
	}
	if dir := os.Getenv("HUB_SCREENSHOTS"); dir != "" {
		writeFile(t, filepath.Join(dir, name), shot)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
