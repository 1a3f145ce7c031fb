package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestDemo: hub --demo runs simulated motes on its own MQTT listener; they
// answer commands; on shutdown they disconnect while the broker still runs.
func TestDemo(t *testing.T) {
	h := startHub(t, "--demo", "--demo-motes", "2")
	if !strings.Contains(h.Log.String(), `msg="demo on: simulated motes publish under nodes/" motes=2 broker=mqtt://`+h.MQTT) {
		t.Errorf("no demo line naming 2 motes and the broker in the log:\n%s", h.Log)
	}
	ws, _ := h.session(t, "/ws", `{"ack": true, "subscribe": ["nodes/+/relay/#"]}`)
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		ws.Send(`["clown.talk/-/state/get", {"filter": "nodes/mote-2/relay/#"}]`)
		return strings.Contains(string(ws.Expect("clown.talk/-/state/ok").Payload), "nodes/mote-2/relay/i2c0-3c")
	}, "mote-2's relays never reported")
	ws.Send(`["nodes/mote-2/relay/i2c0-3c/set", {"state": true}]`)
	if f := ws.Expect("clown.talk/-/ack"); !strings.Contains(string(f.Payload), `"ok":true`) {
		t.Fatalf("ack %s", f.Payload)
	}

	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	log := h.Log.String()
	// "disconnected reason=stopping" is what a mote logs when it leaves an
	// open connection: the broker was still there.
	if n := len(regexp.MustCompile(`msg=disconnected component=motesim mote=mote-\d reason=stopping`).FindAllString(log, -1)); n != 2 {
		t.Errorf("%d motes disconnected cleanly on shutdown, want 2:\n%s", n, log)
	}
	if strings.Index(log, "msg=\"motes stopped\"") > strings.Index(log, "msg=stopped") {
		t.Errorf("the motes stopped after the hub:\n%s", log)
	}
}

// TestDemoNeedsMQTT: --demo without the MQTT listener, or with no motes, is
// refused with a message that says why, before anything is written to --data.
func TestDemoNeedsMQTT(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--demo", "--mqtt", ""}, `--demo needs the MQTT listener`},
		{[]string{"--demo", "--demo-motes", "0"}, `--demo-motes 0: want at least 1`},
	} {
		data := filepath.Join(t.TempDir(), "hub-data")
		args := append([]string{"--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", data}, tt.args...)
		start := time.Now()
		err := run(t.Context(), args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run %v = %v, want an error containing %q", tt.args, err, tt.want)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("run %v took %v to refuse", tt.args, time.Since(start))
		}
		if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("run %v refused after creating %s (%v)", tt.args, data, err)
		}
	}
}

// TestDashboardOptions: the flags of the demo and of command confirmation,
// their environment twins, and --help.
func TestDashboardOptions(t *testing.T) {
	env := map[string]string{"HUB_DEMO": "true", "HUB_DEMO_MOTES": "5", "HUB_ACK_TIMEOUT": "250ms"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o, err := parseOptions(nil, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Demo || o.DemoMotes != 5 || o.AckTimeout != 250*time.Millisecond {
		t.Fatalf("from the environment: demo %v, motes %d, ack timeout %v", o.Demo, o.DemoMotes, o.AckTimeout)
	}
	o, err = parseOptions(nil, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil || o.Demo || o.DemoMotes != 3 || o.AckTimeout != 5*time.Second {
		t.Fatalf("defaults: demo %v, motes %d, ack timeout %v, err %v", o.Demo, o.DemoMotes, o.AckTimeout, err)
	}
	for _, bad := range []string{"0s", "-1s", "soon"} {
		if _, err := parseOptions([]string{"--ack-timeout", bad}, lookup, io.Discard); err == nil {
			t.Errorf("--ack-timeout %s accepted", bad)
		}
	}
	var help strings.Builder
	_, _ = parseOptions([]string{"--help"}, lookup, &help)
	for _, want := range []string{"Demo:", "--demo ", "[HUB_DEMO]", "--demo-motes N", `(default "3")`, "Commands:", "--ack-timeout DURATION", `(default "5s")`} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, help.String())
		}
	}
}

func TestDialable(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:1883": "127.0.0.1:1883",
		"0.0.0.0:1883":   "127.0.0.1:1883",
		"[::]:1883":      "[::1]:1883",
		"[::1]:1883":     "[::1]:1883",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialable(tcp); got != want {
			t.Errorf("dialable(%s) = %s, want %s", addr, got, want)
		}
	}
}

// demoDiscovery are the retained messages by which the demo's devices of
// other conventions announce themselves, and what each must hold.
var demoDiscovery = map[string]string{
	"homeassistant/sensor/motesim_climate/temperature/config": `"state_topic":"motesim_climate/sensor"`,
	"homeassistant/switch/motesim_climate/heater/config":      `"cmd_t":"~/set"`,
	"motesim_climate/status":                                  `online`,
	"zigbee2mqtt/bridge/devices":                              `"friendly_name":"kitchen_lamp"`,
	"zigbee2mqtt/kitchen_lamp/availability":                   `{"state":"online"}`,
	"tasmota/discovery/DC4F22A1B2C3/config":                   `"t":"tasmota_A1B2C3"`,
	"tele/tasmota_A1B2C3/LWT":                                 `Online`,
	"homie/thermostat/$homie":                                 `4.0`,
	"homie/thermostat/$state":                                 `ready`,
}

// TestDemoDevices: hub --demo runs one device of each convention next to
// the motes, and each announces itself retained, anonymously as with a
// users file (the demo's built-in user may use their topics); on shutdown
// they disconnect cleanly.
func TestDemoDevices(t *testing.T) {
	users, _ := writeUsers(t, false)
	for _, tt := range []struct {
		name       string
		args       []string
		user, pass string
	}{
		{"anonymous", nil, "", ""},
		{"users", []string{"--users", users}, "ops", opsPassword},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := startHub(t, append([]string{"--demo", "--demo-motes", "1"}, tt.args...)...)
			if !strings.Contains(h.Log.String(), `msg="demo on: one simulated device of each convention" devices=homeassistant,zigbee2mqtt,tasmota,homie`) {
				t.Errorf("no demo line naming the devices:\n%s", h.Log)
			}
			attempt := 0
			hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
				attempt++
				got := demoRetained(t, h.MQTT, fmt.Sprintf("late-%d", attempt), tt.user, tt.pass)
				for topic, want := range demoDiscovery {
					if !strings.Contains(got[topic], want) {
						return fmt.Errorf("retained %s: %q, want it to hold %q", topic, got[topic], want)
					}
				}
				return nil
			})
			if err := h.Stop(); err != nil {
				t.Fatal(err)
			}
			log := h.Log.String()
			for _, device := range []string{"homeassistant", "zigbee2mqtt", "tasmota", "homie"} {
				if !strings.Contains(log, "msg=disconnected component=motesim device="+device+" reason=stopping") {
					t.Errorf("%s did not disconnect cleanly on shutdown:\n%s", device, log)
				}
			}
			if strings.Contains(log, "connect failed") {
				t.Errorf("a simulated device could not connect:\n%s", log)
			}
		})
	}
}

// demoRetained is every retained message a new subscriber to # gets from
// the broker at addr, by topic.
func demoRetained(t *testing.T, addr, clientID, user, pass string) map[string]string {
	t.Helper()
	c, err := hubtest.ConnectMQTTWith("tcp://"+addr, clientID, user, pass, func(o *paho.ClientOptions) { o.SetOrderMatters(true) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	ch := hubtest.SubscribeMQTT(t, c, "#", 1)
	// The retained messages came on SUBSCRIBE, before the broker handles
	// this client's next publish: that one marks their end.
	end := "demo-test/" + clientID
	hubtest.PublishMQTT(t, c, end, 1, false, []byte("end"))
	got := map[string]string{}
	for {
		m := hubtest.Receive(t, ch, hubtest.Timeout, "the end of the retained messages")
		if m.Topic == end {
			return got
		}
		if m.Retain {
			got[m.Topic] = m.Payload
		}
	}
}

// TestDemoDevicesInAPI: every simulated device of hub --demo appears in
// /api/devices with its convention, its name and online; a command through
// the device model to each control is confirmed by the device.
func TestDemoDevicesInAPI(t *testing.T) {
	h := startHub(t, "--demo", "--demo-motes", "1")
	type device struct {
		ID, Name, Convention, Availability string
	}
	want := map[string]device{
		"homeassistant:motesim_climate":  {Name: "Living room climate", Convention: "homeassistant", Availability: "online"},
		"zigbee2mqtt:0x000b57fffec6a5b2": {Name: "kitchen_lamp", Convention: "zigbee2mqtt", Availability: "online"},
		"tasmota:DC4F22A1B2C3":           {Name: "Desk plug", Convention: "tasmota", Availability: "online"},
		"homie:thermostat":               {Name: "Hall thermostat", Convention: "homie", Availability: "online"},
		"hardwario:" + "nodes/mote-1":    {Name: "mote-1", Convention: "hardwario"},
	}
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		status, body := httpGet(t, "http://"+h.HTTP+"/api/devices")
		var got struct{ Devices []device }
		if status != http.StatusOK || json.Unmarshal(body, &got) != nil {
			return fmt.Errorf("GET /api/devices: %d %.300s", status, body)
		}
		byID := map[string]device{}
		for _, d := range got.Devices {
			byID[d.ID] = device{Name: d.Name, Convention: d.Convention, Availability: d.Availability}
		}
		for id, w := range want {
			g, ok := byID[id]
			if w.Availability == "" { // the motes: the model learns their pace
				g.Availability = ""
			}
			if !ok || g != w {
				return fmt.Errorf("device %s: %+v, want %+v; all: %.2000s", id, g, w, body)
			}
		}
		return nil
	})

	for _, c := range []struct{ device, entity string }{
		{"homeassistant:motesim_climate", "heater"},
		{"zigbee2mqtt:0x000b57fffec6a5b2", "state"},
		{"tasmota:DC4F22A1B2C3", "power"},
		{"homie:thermostat", "heater/power"},
	} {
		for _, value := range []string{"true", "false"} {
			body := fmt.Sprintf(`{"entity": %q, "value": %s}`, c.entity, value)
			resp, err := http.Post("http://"+h.HTTP+"/api/devices/"+url.PathEscape(c.device)+"/command", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"ok":true`) {
				t.Errorf("%s %s = %s: %d %s, want the device to confirm it", c.device, c.entity, value, resp.StatusCode, answer)
			}
		}
	}
}

// httpGet is a GET's status and body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}
