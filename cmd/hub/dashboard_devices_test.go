package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/devicetrace"
	"github.com/motehub/motehub/internal/hubtest"
)

// The dashboard with the hub's device model, end to end: the device traces
// of testdata/devices are replayed through the hub's real broker (retained
// flags kept), paho clients play the devices that answer commands, and a
// headless Chromium shows the cards. What the page shows is checked against
// what the traces say; commands against the bytes an MQTT subscriber gets.

// deviceHelpers are shorthands the tests evaluate in the page.
const deviceHelpers = `
window.card = (id) => document.querySelector('.device-card[data-device-id="' + id + '"]');
window.entity = (id, e) => card(id)?.querySelector('.tile[data-entity="' + e + '"]');
window.entityText = (id, e, sel) => entity(id, e)?.querySelector(sel)?.textContent ?? "";
// recordDeviceCommands notes every state the page learns for the commands
// to an entity. (The page draws at most once per frame.)
window.recordDeviceCommands = (id, e) => {
	const seen = [], apply = motehub.store.apply.bind(motehub.store);
	motehub.store.apply = (ev) => {
		if (ev.type === "command" && ev.command.device === id && ev.command.entity === e) seen.push(ev.command.state);
		apply(ev);
	};
	return seen;
};
true`

// replayTraces publishes every message of testdata/devices/*.trace with c,
// as the trace says (retained or not), and returns how many there were.
func replayTraces(t *testing.T, c paho.Client) int {
	t.Helper()
	msgs, err := devicetrace.ReadDir(filepath.Join("..", "..", "testdata", "devices"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		hubtest.PublishMQTT(t, c, m.Topic, 1, m.Retain, m.Payload)
	}
	return len(msgs)
}

// traceDevices are devices the traces define, with a reading each shows
// with its unit (the last value the trace gives it).
var traceDevices = []struct{ id, name, entity, value string }{
	{"zigbee2mqtt:0x000b57fffec6a5b2", "kitchen_lamp", "", ""},
	{"zigbee2mqtt:0x00158d0004a1b2c3", "living_room/climate", "temperature", "21.54 °C"},
	{"zigbee2mqtt:0x7cb03eaa0a0b1c2d", "desk_plug", "", ""},
	{"tasmota:A4CF12A1B2C3", "Coffee machine", "ENERGY.Voltage", "229 V"},
	{"tasmota:DC4F22D41234", "Garden", "BME280.Temperature", "7.2 °C"},
	{"homie:kitchen-thermostat", "Kitchen thermostat", "sensor/humidity", "44 %"},
	{"homie:garage-door", "Garage door", "door/position", "0 %"},
	{"homeassistant:bedroom01ae", "Bedroom", "sensorBedroomT", "23.5 °C"},
	{"homeassistant:garden01ad", "Irrigation", "", ""},
	{"hardwario:node/kitchen", "kitchen", "co2-meter/-/concentration", "612 ppm"},
}

// switchCase is a switch of one convention that the test toggles: the
// device's state topic, and the bytes its command topic carries and its
// state topic answers for on and off.
type switchCase struct {
	device, entity, command, state string
	on, off                        string // the command's bytes, which the device echoes as its state
}

var switchCases = []switchCase{
	{"zigbee2mqtt:0x000b57fffec6a5b2", "state", "zigbee2mqtt/kitchen_lamp/set", "zigbee2mqtt/kitchen_lamp", `{"state":"ON"}`, `{"state":"OFF"}`},
	{"tasmota:A4CF12A1B2C3", "power", "cmnd/tasmota_A1B2C3/POWER", "stat/tasmota_A1B2C3/POWER", "ON", "OFF"},
	{"homeassistant:garden01ad", "irrigation", "homeassistant/switch/irrigation/set", "homeassistant/switch/irrigation/state", "ON", "OFF"},
	{"homie:kitchen-thermostat", "heater/power", "homie/kitchen-thermostat/heater/power/set", "homie/kitchen-thermostat/heater/power", "true", "false"},
}

// TestDashboardDevicesFromTraces: with the traces replayed, each device
// shows its name, and its readings with their units (JSON fields charted
// one by one); switching the Zigbee2MQTT bulb, the Tasmota plug, the Home
// Assistant switch and the Homie property each shows waiting, the device
// gets the bytes its convention expects, and once it answers the control
// shows confirmed with the new state; the offline Zigbee2MQTT plug's switch
// fails with "offline" and nothing reaches it.
func TestDashboardDevicesFromTraces(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	player := hubtest.ConnectMQTT(t, h.MQTT, "trace-player")
	replayTraces(t, player)
	device := hubtest.ConnectMQTT(t, h.MQTT, "devices")
	commands := hubtest.SubscribeMQTT(t, device, "#", 1) // the devices see every command
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	hubtest.Eval[bool](t, b, deviceHelpers)

	for _, d := range traceDevices {
		b.WaitJS(t, hubtest.Timeout, `card("`+d.id+`") !== null`, `[...document.querySelectorAll(".device-card")].map(c => c.dataset.deviceId)`)
		if got := hubtest.Eval[string](t, b, `card("`+d.id+`").querySelector(".device-name").textContent`); got != d.name {
			t.Errorf("%s is called %q, want %q", d.id, got, d.name)
		}
		if d.entity != "" {
			if got := hubtest.Eval[string](t, b, `entityText("`+d.id+`", "`+d.entity+`", ".tile-value")`); got != d.value {
				t.Errorf("%s %s shows %q, want %q", d.id, d.entity, got, d.value)
			}
		}
	}
	// Every reading of every card shows its unit; every number has its chart.
	if missing := hubtest.Eval[[]string](t, b, `[...motehub.store.models.values()].filter(d => card(d.id)).flatMap(d => d.entities
		.filter(e => e.type === "number" && e.value !== undefined)
		.filter(e => !entity(d.id, e.id)?.querySelector(".chart") || (e.unit && !entityText(d.id, e.id, ".tile-value").endsWith(" " + e.unit)))
		.map(e => d.id + " " + e.id + ": " + entityText(d.id, e.id, ".tile-value")))`); len(missing) > 0 {
		t.Errorf("readings without their unit or chart: %q", missing)
	}
	// The climate sensor's JSON fields are charted one by one.
	climate := "zigbee2mqtt:0x00158d0004a1b2c3"
	if got := hubtest.Eval[int](t, b, `card("`+climate+`").querySelectorAll(".tile .chart").length`); got < 4 {
		t.Errorf("the climate sensor has %d charts, want one per numeric field (battery, voltage, temperature, humidity, pressure)", got)
	}
	if got := hubtest.Eval[string](t, b, `card("`+climate+`").querySelector(".device-facts").textContent`); got != "battery 87 %link 60" {
		t.Errorf("the climate sensor's battery and link: %q", got)
	}

	// The offline plug: its switch fails at once, and the plug gets nothing.
	plug := "zigbee2mqtt:0x7cb03eaa0a0b1c2d"
	if got := hubtest.Eval[string](t, b, `card("`+plug+`").dataset.availability + " " + card("`+plug+`").classList.contains("offline")`); got != "offline true" {
		t.Errorf("the desk plug's card: %q, want offline and greyed", got)
	}
	b.Do(t, chromedp.Click(chromedp.CSS(`.device-card[data-device-id="`+plug+`"] .tile[data-entity="state"] button`)))
	b.WaitJS(t, hubtest.Timeout, `entityText("`+plug+`", "state", ".command-status") === "Failed: offline"`, `entityText("`+plug+`", "state", ".command-status")`)

	for _, sc := range switchCases {
		t.Run(sc.device, func(t *testing.T) {
			control := fmt.Sprintf(`.device-card[data-device-id="%s"] .tile[data-entity="%s"] button`, sc.device, sc.entity)
			b.WaitJS(t, hubtest.Timeout, `entity("`+sc.device+`", "`+sc.entity+`")?.querySelector("button") != null`, `card("`+sc.device+`")?.outerHTML`)
			was := hubtest.Eval[string](t, b, `entityText("`+sc.device+`", "`+sc.entity+`", ".badge")`)
			want, now, sent := "on", "off", sc.on
			if was == "on" {
				want, now, sent = "off", "on", sc.off
			}
			hubtest.Eval[bool](t, b, `window.seen = recordDeviceCommands("`+sc.device+`", "`+sc.entity+`"); true`)
			b.Do(t, chromedp.Click(chromedp.CSS(control)))

			// The device gets the command, in its convention's bytes…
			deadline := time.Now().Add(hubtest.Timeout) // other messages may keep coming
			for {
				if time.Now().After(deadline) {
					t.Fatalf("no command on %s within %v of the click", sc.command, hubtest.Timeout)
				}
				m := hubtest.Receive(t, commands, hubtest.Timeout, "the command at the device")
				if m.Topic == sc.command {
					if m.Payload != sent {
						t.Fatalf("the device got %q on %s, want %q", m.Payload, sc.command, sent)
					}
					break
				}
			}
			// …while the page shows it waiting, with the reported state…
			b.WaitJS(t, hubtest.Timeout, `entity("`+sc.device+`", "`+sc.entity+`").dataset.command === "pending"`, `entity("`+sc.device+`", "`+sc.entity+`").outerHTML`)
			if got := hubtest.Eval[string](t, b, `[".badge", "button", ".command-status"].map(s => entityText("`+sc.device+`", "`+sc.entity+`", s)).join(" | ")`); got != now+" | Turning "+want+"… | Waiting for the device…" {
				t.Errorf("while the command waits the control shows %q", got)
			}
			// …until the device answers with its new state.
			hubtest.PublishMQTT(t, device, sc.state, 1, false, []byte(sent))
			b.WaitJS(t, hubtest.Timeout, `entity("`+sc.device+`", "`+sc.entity+`").dataset.command === "ok"`, `JSON.stringify(seen)`)
			if got := hubtest.Eval[string](t, b, `entityText("`+sc.device+`", "`+sc.entity+`", ".badge") + " | " + entityText("`+sc.device+`", "`+sc.entity+`", ".command-status")`); !strings.HasPrefix(got, want+" | Confirmed in ") {
				t.Errorf("after the answer the control shows %q", got)
			}
			if got := hubtest.Eval[string](t, b, `seen.join()`); got != "pending,ok" {
				t.Errorf("the command went through %q, want pending,ok", got)
			}
		})
	}
	// Nothing went to the offline plug (the hub publishes in order: it
	// would have come before the commands that followed).
	for len(commands) > 0 {
		if m := <-commands; m.Topic == "zigbee2mqtt/desk_plug/set" {
			t.Errorf("the offline plug got %q", m.Payload)
		}
	}
	checkConsole(t, b)
}

// TestDashboardDevicesFollowReadACL: a user who may read only the kitchen
// lamp's topics sees that device on the dashboard, and nothing else.
func TestDashboardDevicesFollowReadACL(t *testing.T) {
	t.Parallel()
	users := filepath.Join(t.TempDir(), "users.toml")
	content := fmt.Sprintf(`
[users.kitchen]
password = %q
read = ["zigbee2mqtt/kitchen_lamp/#"]
write = ["zigbee2mqtt/kitchen_lamp/set"]
[users.ops]
password = %q
readwrite = ["#"]
`, hubtest.PasswordHash(t, "kitchen-secret"), hubtest.PasswordHash(t, opsPassword))
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, "--users", users)
	player, err := hubtest.ConnectMQTTAs(h.MQTT, "trace-player", "ops", opsPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer player.Disconnect(100)
	replayTraces(t, player)

	b := hubtest.NewBrowser(t)
	b.Do(t,
		chromedp.Navigate("http://"+h.HTTP+"/"),
		chromedp.WaitVisible(`#user`),
		chromedp.SendKeys(`#user`, "kitchen"),
		chromedp.SendKeys(`#password`, "kitchen-secret"),
		chromedp.Submit(`#password`),
	)
	b.WaitJS(t, hubtest.Timeout, `window.motehub !== undefined && document.getElementById("connection").dataset.state === "live"`, `location.href`)
	hubtest.Eval[bool](t, b, deviceHelpers)
	lamp := "zigbee2mqtt:0x000b57fffec6a5b2"
	b.WaitJS(t, hubtest.Timeout, `card("`+lamp+`") !== null && entityText("`+lamp+`", "state", ".badge") !== ""`, `document.getElementById("devices").textContent.slice(0, 300)`)
	// Everything the hub gives the page is in: the last values and the devices.
	b.WaitJS(t, hubtest.Timeout, `motehub.store.status.model === "ok" && motehub.store.tiles.size > 0`, `JSON.stringify(motehub.store.status)`)
	// A value may come before the device that claims its topic: its card
	// is generic until the model's next frame; then only the lamp is left.
	seen := `[...document.querySelectorAll("#devices .device")].map(d => d.dataset.deviceId ?? d.dataset.device).join() + " | " + [...motehub.store.models.keys()].join()`
	b.WaitJS(t, hubtest.Timeout, seen+` === "`+lamp+" | "+lamp+`"`, seen)
	// The login page names no icon: Chromium asks for /favicon.ico before
	// the login, and is refused.
	checkConsole(t, b, regexp.MustCompile(`/favicon\.ico.* 401 \(Unauthorized\)`))
}
