package main

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// The dashboard's cards for the devices of the hub's model, drawn in
// Chromium from devices as docs/devices.md describes them, fed to the
// page's own Store and DevicesView (the end-to-end tests with the real
// model are in dashboard_devices_test.go). Controls send through a
// recorder; commands progress by the events the connection would emit.

// cardsSetup builds a Store and a DevicesView in the page, on a root of
// their own, with the devices of docs/devices.md's example and more.
const cardsSetup = `(async () => {
	const { Store } = await import("/assets/js/store.js");
	const { DevicesView } = await import("/assets/js/devices.js");
	const root = document.createElement("section");
	root.id = "cards-under-test";
	document.body.append(root);
	window.sent = [];
	window.cs = new Store(async () => []);
	const view = new DevicesView(root, cs, (topic, payload) => sent.push({topic, payload}),
		(device, entity, value, topic) => sent.push({device, entity, value, topic}));
	cs.subscribe((changes) => view.render(changes));
	window.card = (id) => root.querySelector('.device-card[data-device-id="' + id + '"]');
	window.entity = (id, e) => card(id)?.querySelector('.tile[data-entity="' + e + '"]');
	window.entityText = (id, e, sel) => entity(id, e)?.querySelector(sel)?.textContent ?? "";
	window.now = new Date().toISOString();
	const lamp = {id: "zigbee2mqtt:kitchen_lamp", name: "Kitchen lamp", convention: "zigbee2mqtt", model: "LED1545G12", manufacturer: "IKEA",
		availability: "online", linkquality: 96, battery: 80, updated: now, entities: [
		{id: "state", name: "State", kind: "light", type: "boolean", topic: "zigbee2mqtt/kitchen_lamp", field: "state", value: false, updated: now,
			control: {topic: "zigbee2mqtt/kitchen_lamp/set"}},
		{id: "brightness", name: "Brightness", kind: "number", type: "number", topic: "zigbee2mqtt/kitchen_lamp", field: "brightness", value: 120, updated: now,
			control: {topic: "zigbee2mqtt/kitchen_lamp/set", min: 0, max: 254, step: 1}},
		{id: "effect", name: "Effect", kind: "select", type: "enum", topic: "zigbee2mqtt/kitchen_lamp", field: "effect", value: "none", updated: now,
			control: {topic: "zigbee2mqtt/kitchen_lamp/set", options: ["none", "blink", "breathe"]}},
		{id: "identify", name: "Identify", kind: "button", type: "text", control: {topic: "zigbee2mqtt/kitchen_lamp/set"}}]};
	const sensor = {id: "homeassistant:porch", name: "Porch sensor", convention: "homeassistant", availability: "offline", entities: [
		{id: "temperature", name: "Temperature", kind: "sensor", type: "number", unit: "°C", topic: "porch/state", field: "temperature", value: 21.5, updated: now},
		{id: "raw", name: "Raw", kind: "sensor", type: "json", topic: "porch/raw", value: {"a": [1, 2]}, note: "template not evaluated: {{ value_json.a | first }}"},
		{id: "setpoint", name: "Setpoint", kind: "number", type: "number", unit: "°C", topic: "porch/setpoint", value: 19,
			control: {topic: "porch/setpoint/set", step: 0.5}}]};
	const plain = {id: "json:misc/box", name: "box", convention: "json", availability: "unknown", entities: [
		{id: "t", name: "t", kind: "sensor", type: "number", topic: "misc/box/t", value: 3}]};
	cs.apply({type: "status", status: {state: "live", model: "ok"}});
	cs.apply({type: "state", values: [
		{topic: "zigbee2mqtt/kitchen_lamp", payload: {state: "OFF", brightness: 120}, time: Date.now()},
		{topic: "zigbee2mqtt/kitchen_lamp/availability", payload: "online", time: Date.now()},
		{topic: "zigbee2mqtt/bridge/devices", payload: [], time: Date.now()},
		{topic: "homeassistant/sensor/porch/config", payload: {name: "Porch"}, time: Date.now()},
		{topic: "porch/state", payload: {temperature: 21.5}, time: Date.now()},
		{topic: "misc/box/t", payload: 3, time: Date.now()},
		{topic: "nodes/mote-1/asn", payload: 7, time: Date.now()}]});
	cs.apply({type: "devices", devices: [lamp, sensor, plain]});
	return true;
})()`

// TestDashboardDeviceCards: a card per device of the model (not for plain
// JSON devices, which keep the generic look): name, model and maker,
// availability, battery and link quality; each entity with its unit and
// the control its kind calls for; a topic a card shows is not shown again
// in a generic card. A toggle shows the reported state with the pending
// target marked, then the outcome in words.
func TestDashboardDeviceCards(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	h := startHub(t)
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	evalAsync[bool](t, b, cardsSetup)
	lamp := "zigbee2mqtt:kitchen_lamp"
	b.WaitJS(t, hubtest.Timeout, `card("`+lamp+`") !== null && card("homeassistant:porch") !== null`, `document.getElementById("cards-under-test").innerHTML.slice(0, 300)`)

	checks := map[string]string{
		// The card's head.
		`card("` + lamp + `").querySelector(".device-name").textContent`:                                                                                                  "Kitchen lamp",
		`card("` + lamp + `").querySelector(".device-meta").textContent`:                                                                                                  "LED1545G12 · IKEA",
		`card("` + lamp + `").querySelector(".availability").textContent`:                                                                                                 "online",
		`card("` + lamp + `").querySelector(".device-facts").textContent`:                                                                                                 "battery 80 %link 96",
		`String(card("homeassistant:porch").classList.contains("offline"))`:                                                                                               "true",
		`card("homeassistant:porch").querySelector(".availability").textContent`:                                                                                          "offline",
		`String(card("homeassistant:porch").querySelector(".device-meta").hidden || getComputedStyle(card("homeassistant:porch").querySelector(".device-meta")).display)`: "none",
		// Entities: the light toggles and shows the reported state.
		`entity("` + lamp + `", "state").dataset.kind + " " + entityText("` + lamp + `", "state", ".badge") + " " + entityText("` + lamp + `", "state", "button")`: "light off Turn on",
		// A number with a range gets a slider within it, at the reported value.
		`(() => { const i = entity("` + lamp + `", "brightness").querySelector("input"); return [i.type, i.min, i.max, i.step, i.value].join(); })()`: "range,0,254,1,120",
		`entityText("` + lamp + `", "brightness", ".tile-value")`:                                                                                     "120",
		// A select offers its options, at the reported one; a button presses.
		`(() => { const s = entity("` + lamp + `", "effect").querySelector("select"); return [...s.options].map(o => o.value).join() + " " + s.value; })()`: "none,blink,breathe none",
		`entityText("` + lamp + `", "identify", "button")`: "Press",
		// Read-only values with their units and a chart; raw JSON with its note.
		`entityText("homeassistant:porch", "temperature", ".tile-value")`:                                                                    "21.5 °C",
		`String(entity("homeassistant:porch", "temperature").querySelector(".chart").dataset.points)`:                                        "1",
		`String(entity("homeassistant:porch", "temperature").querySelector("button, input, select") === null)`:                               "true",
		`entityText("homeassistant:porch", "raw", ".tile-value") + " | " + entityText("homeassistant:porch", "raw", ".tile-note")`:           `{"a":[1,2]} | template not evaluated: {{ value_json.a | first }}`,
		`(() => { const i = entity("homeassistant:porch", "setpoint").querySelector("input"); return [i.type, i.step, i.value].join(); })()`: "number,0.5,19",
		// Plain JSON devices keep the generic look; no topic is shown twice:
		// not the lamp's state, its availability, the Zigbee2MQTT bridge or
		// the Home Assistant discovery.
		`document.querySelectorAll("#cards-under-test .device-card").length + " " + [...document.querySelectorAll("#cards-under-test .device:not(.device-card) .tile")].map(e => e.dataset.topic).sort().join()`: "2 misc/box/t,nodes/mote-1/asn",
	}
	for js, want := range checks {
		if got := hubtest.Eval[string](t, b, js); got != want {
			t.Errorf("%s\n  = %q, want %q", js, got, want)
		}
	}

	// The toggle asks for the other state; while the command waits the badge
	// still says what the device reported and the button the target.
	b.Do(t, chromedp.Click(chromedp.CSS(`.device-card[data-device-id="`+lamp+`"] .tile[data-entity="state"] button`)))
	if got := hubtest.Eval[string](t, b, `JSON.stringify(sent)`); got != `[{"device":"`+lamp+`","entity":"state","value":true,"topic":"zigbee2mqtt/kitchen_lamp/set"}]` {
		t.Fatalf("the toggle sent %s", got)
	}
	command := func(state, code string) {
		hubtest.Eval[bool](t, b, `cs.apply({type: "command", command: {id: "c1", device: "`+lamp+`", entity: "state", topic: "zigbee2mqtt/kitchen_lamp/set",
			payload: true, state: "`+state+`", code: "`+code+`", error: "`+code+`", ms: 35}}); true`)
	}
	command("pending", "")
	b.WaitJS(t, hubtest.Timeout, `entity("`+lamp+`", "state").dataset.command === "pending"`, `entity("`+lamp+`", "state").outerHTML`)
	if got := hubtest.Eval[string](t, b, `[".badge", "button", ".command-status"].map(s => entityText("`+lamp+`", "state", s)).join(" | ")`); got != "off | Turning on… | Waiting for the device…" {
		t.Errorf("while the command waits the light shows %q", got)
	}
	b.Do(t, chromedp.Click(chromedp.CSS(`.device-card[data-device-id="`+lamp+`"] .tile[data-entity="state"] button`)))
	if n := hubtest.Eval[int](t, b, `sent.length`); n != 1 {
		t.Errorf("a second click while the command waits sent it again (%d commands)", n)
	}
	command("failed", "offline")
	b.WaitJS(t, hubtest.Timeout, `entityText("`+lamp+`", "state", ".command-status") === "Failed: offline"`, `entityText("`+lamp+`", "state", ".command-status")`)
	if got := hubtest.Eval[string](t, b, `entityText("`+lamp+`", "state", ".badge") + " | " + entityText("`+lamp+`", "state", "button")`); got != "off | Turn on" {
		t.Errorf("after the failure the light shows %q, want the reported state", got)
	}

	// The slider sends the value let go on (SetValue fires change); a select
	// its option.
	b.Do(t, chromedp.SetValue(chromedp.CSS(`.device-card[data-device-id="`+lamp+`"] .tile[data-entity="brightness"] input`), "200"))
	b.Do(t, chromedp.SetValue(chromedp.CSS(`.device-card[data-device-id="`+lamp+`"] .tile[data-entity="effect"] select`), "blink"))
	b.Do(t, chromedp.Click(chromedp.CSS(`.device-card[data-device-id="`+lamp+`"] .tile[data-entity="identify"] button`)))
	if got := hubtest.Eval[string](t, b, `JSON.stringify(sent.slice(1).map(s => [s.entity, s.value]))`); got != `[["brightness",200],["effect","blink"],["identify",null]]` {
		t.Errorf("the controls sent %s", got)
	}

	// The device reports the new state: the badge follows; a new value adds
	// a point to the chart; a device that goes away takes its card along and
	// gives its topics back to the generic cards.
	hubtest.Eval[bool](t, b, `(() => {
		const d = structuredClone(cs.models.get("`+lamp+`"));
		d.entities[0].value = true;
		d.entities[1].value = 200; d.entities[1].updated = new Date(Date.now() + 1).toISOString();
		cs.apply({type: "device", device: d});
		return true;
	})()`)
	b.WaitJS(t, hubtest.Timeout, `entityText("`+lamp+`", "state", ".badge") === "on" && entity("`+lamp+`", "brightness").querySelector(".chart").dataset.points === "2"`,
		`entity("`+lamp+`", "state").outerHTML`)
	hubtest.Eval[bool](t, b, `cs.apply({type: "device", device: {id: "`+lamp+`", removed: true}}); true`)
	b.WaitJS(t, hubtest.Timeout, `card("`+lamp+`") === null && document.querySelector('#cards-under-test .tile[data-topic="zigbee2mqtt/kitchen_lamp"]') !== null`,
		`[...document.querySelectorAll("#cards-under-test .tile")].map(e => e.dataset.topic)`)
	if got := hubtest.Eval[string](t, b, `[...cs.deviceCommands.keys(), ...[...cs.entitySeries.keys()].filter(k => k.startsWith("`+lamp+`"))].join()`); got != "" {
		t.Errorf("after the lamp went away the store still has %q", got)
	}
	checkConsole(t, b)
}

// TestDashboardDeviceBounds: what the page keeps of the model is bounded:
// devices (10,000), points per entity (240), the commands to entities
// (those of devices it knows).
func TestDashboardDeviceBounds(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/"))
	got := evalAsync[map[string]float64](t, b, `(async () => {
		const { Store } = await import("/assets/js/store.js");
		const s = new Store(async () => []);
		const device = (i, v) => ({id: "homie:d" + i, name: "d" + i, convention: "homie", availability: "online",
			entities: [{id: "t", name: "t", kind: "sensor", type: "number", topic: "homie/d" + i + "/n/t", value: v, updated: new Date(1e12 + v).toISOString()}]});
		s.apply({type: "devices", devices: Array.from({length: 10005}, (_, i) => device(i, 1))});
		const devices = s.models.size;
		s.apply({type: "device", device: device(20000, 1)});
		const afterOneMore = s.models.size;
		for (let v = 2; v < 400; v++) s.apply({type: "device", device: device(0, v)});
		const points = s.entitySeries.get("homie:d0\nt").series.length;
		s.apply({type: "command", command: {id: "c1", device: "homie:unknown", entity: "t", topic: "x/set", state: "pending"}});
		s.apply({type: "command", command: {id: "c2", device: "homie:d1", entity: "t", topic: "x/set", state: "pending"}});
		const commands = s.deviceCommands.size;
		s.apply({type: "devices", devices: [device(0, 1)]});
		return {devices, afterOneMore, points, commands, left: s.models.size, seriesLeft: s.entitySeries.size, commandsLeft: s.deviceCommands.size};
	})()`)
	want := map[string]float64{"devices": 10000, "afterOneMore": 10000, "points": 240, "commands": 1, "left": 1, "seriesLeft": 1, "commandsLeft": 0}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	checkConsole(t, b)
}

// evalAsync evaluates an expression that is a promise and returns what it
// resolves to.
func evalAsync[T any](t *testing.T, b *hubtest.Browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, hubtest.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: evaluating %.60q: %v", js, err)
	}
	return v
}
