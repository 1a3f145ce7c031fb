package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// MQTT.js, the MQTT client of web apps, in a real headless Chromium against
// the hub's MQTT over WebSocket (/mqtt), from a page of another origin that
// the hub allows (--allow-origin), as a web app served elsewhere would be.

// Browser waits are generous: Chromium and the hub share 2 loaded cores.
const jsWait = 3 * hubtest.Timeout

// jsMessage, jsAck and jsOutcome are what the MQTT.js page records (see
// hubtest.MQTTJSPage).
type jsMessage struct {
	Topic      string
	Payload    string
	Retain     bool
	QoS        int `json:"qos"`
	Properties map[string]any
}

type jsAck struct {
	Cmd        string
	MessageID  int `json:"messageId"`
	ReasonCode int `json:"reasonCode"`
	Properties map[string]any
}

type jsOutcome struct {
	Done      bool
	Error     *string
	MessageID int `json:"messageId"`
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// startMQTTJS starts a hub that allows the origin of an MQTT.js page and a
// browser showing that page (hub flags: args).
func startMQTTJS(t *testing.T, args ...string) (*runningHub, *hubtest.Browser) {
	t.Helper()
	page := hubtest.MQTTJSPage(t)
	h := startHub(t, append([]string{"--allow-origin", page}, args...)...)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate(page))
	b.WaitJS(t, jsWait, `typeof mqtt === "object" && typeof openMQTT === "function"`, `document.documentElement.outerHTML.slice(0, 300)`)
	return h, b
}

// connectMQTTJS connects MQTT.js client name (MQTT v5) to h's /mqtt and
// waits for its CONNACK.
func connectMQTTJS(t *testing.T, b *hubtest.Browser, h *runningHub, name string) {
	t.Helper()
	hubtest.Eval[bool](t, b, fmt.Sprintf(`openMQTT(%s, %s, {protocolVersion: 5})`, jsString(name), jsString("ws://"+h.HTTP+"/mqtt")))
	b.WaitJS(t, jsWait, `clients[`+jsString(name)+`].client.connected`, `JSON.stringify(clients[`+jsString(name)+`].log.events)`)
}

// subscribeMQTTJS subscribes client name to filter at QoS 1 and waits for
// the SUBACK.
func subscribeMQTTJS(t *testing.T, b *hubtest.Browser, name, filter string) {
	t.Helper()
	sub := `clients[` + jsString(name) + `].log.subscribed[` + jsString(filter) + `]`
	hubtest.Eval[bool](t, b, `subscribeMQTT(`+jsString(name)+`, `+jsString(filter)+`, {qos: 1})`)
	b.WaitJS(t, jsWait, sub+`.done`, `JSON.stringify(clients[`+jsString(name)+`].log)`)
	if out := hubtest.Eval[jsOutcome](t, b, sub); out.Error != nil {
		t.Fatalf("MQTT.js %s: subscribing to %q failed: %s", name, filter, *out.Error)
	}
}

// messagesMQTTJS waits until client name has received n messages and
// returns them.
func messagesMQTTJS(t *testing.T, b *hubtest.Browser, name string, n int) []jsMessage {
	t.Helper()
	log := `clients[` + jsString(name) + `].log`
	b.WaitJS(t, jsWait, fmt.Sprintf(`%s.messages.length >= %d`, log, n), `JSON.stringify(`+log+`)`)
	return hubtest.Eval[[]jsMessage](t, b, log+`.messages`)
}

// TestMQTTJSRetainedMessageHasNoExpiry: a message carries an expiry only
// when its publisher set one. A retained message from an MQTT 3.1.1 device
// (which cannot set one) reaches an MQTT.js v5 subscriber with no
// messageExpiryInterval; a v5 publish with a 60 s expiry reaches another
// with at most 60 s left. (mochi's default gave every message a day's
// expiry and deleted retained ones after it; broker's
// TestRetainedMessageOutlivesADay shows the second half.)
func TestMQTTJSRetainedMessageHasNoExpiry(t *testing.T) {
	h, b := startMQTTJS(t)
	device := hubtest.ConnectMQTT(t, h.MQTT, "retainer-311")
	hubtest.PublishMQTT(t, device, "lab/thermo/temperature", 1, true, []byte(`21.5`))

	connectMQTTJS(t, b, h, "reader")
	subscribeMQTTJS(t, b, "reader", "lab/thermo/temperature")
	m := messagesMQTTJS(t, b, "reader", 1)[0]
	if m.Topic != "lab/thermo/temperature" || m.Payload != "21.5" || !m.Retain {
		t.Fatalf("MQTT.js got %+v, want the retained 21.5 on lab/thermo/temperature", m)
	}
	if v, ok := m.Properties["messageExpiryInterval"]; ok {
		t.Errorf("a retained message whose publisher set no expiry arrived with messageExpiryInterval %v (properties %v): the broker gave it an expiry", v, m.Properties)
	}

	// A publisher's own expiry is kept, counting down from 60 s.
	connectMQTTJS(t, b, h, "expiry-reader")
	subscribeMQTTJS(t, b, "expiry-reader", "lab/alarm")
	connectMQTTJS(t, b, h, "expiry-writer")
	hubtest.Eval[bool](t, b, `publishMQTT("expiry-writer", "alarm", "lab/alarm", "smoke", {qos: 1, properties: {messageExpiryInterval: 60}})`)
	m = messagesMQTTJS(t, b, "expiry-reader", 1)[0]
	if m.Topic != "lab/alarm" || m.Payload != "smoke" {
		t.Fatalf("MQTT.js got %+v, want smoke on lab/alarm", m)
	}
	if v, ok := m.Properties["messageExpiryInterval"].(float64); !ok || v <= 0 || v > 60 {
		t.Errorf("a message published with a 60 s expiry arrived with messageExpiryInterval %v (properties %v), want 1 to 60", m.Properties["messageExpiryInterval"], m.Properties)
	}
	checkConsole(t, b)
}

// TestMQTTJSPublishWithUserPropertyKeepsConnection: an MQTT.js v5 QoS 1
// publish with a user property is acknowledged with reason code 0 and no
// properties of the publisher's, the connection stays, and an MQTT 3.1.1
// subscriber gets the message. (mochi copied the publisher's properties
// into the PUBACK with reason code 0x01, which MQTT.js takes for a broken
// packet: it dropped the connection, reconnected and sent the publish
// again, forever; mochi-mqtt/server#474.)
func TestMQTTJSPublishWithUserPropertyKeepsConnection(t *testing.T) {
	h, b := startMQTTJS(t)
	watcher := hubtest.ConnectMQTT(t, h.MQTT, "user-property-watcher")
	seen := hubtest.SubscribeMQTT(t, watcher, "lab/#", 1)

	connectMQTTJS(t, b, h, "app")
	hubtest.Eval[bool](t, b, `publishMQTT("app", "lamp", "lab/lamp/set", '{"on":true}', {qos: 1, properties: {userProperties: {a: "b"}}})`)
	// Until the publish completes, or the connection has trouble.
	b.WaitJS(t, jsWait, `clients.app.log.published.lamp.done || clients.app.log.events.some((e) => e !== "connect")`, `JSON.stringify(clients.app.log)`)
	log := `JSON.stringify(clients.app.log)`

	if events := hubtest.Eval[[]string](t, b, `clients.app.log.events`); !slices.Equal(events, []string{"connect"}) {
		t.Errorf("MQTT.js's connection went through %q after the publish, want only the first connect (log %s)", events, hubtest.Eval[string](t, b, log))
	}
	out := hubtest.Eval[jsOutcome](t, b, `clients.app.log.published.lamp`)
	if !out.Done || out.Error != nil {
		t.Fatalf("the publish did not complete cleanly in MQTT.js: %+v (log %s)", out, hubtest.Eval[string](t, b, log))
	}
	acks := hubtest.Eval[[]jsAck](t, b, `clients.app.log.acks`)
	if len(acks) != 1 || acks[0].Cmd != "puback" || acks[0].MessageID != out.MessageID {
		t.Fatalf("MQTT.js received the acks %+v, want one PUBACK for message %d", acks, out.MessageID)
	}
	if acks[0].ReasonCode != 0 || len(acks[0].Properties) != 0 {
		t.Errorf("PUBACK with reason code %#x and properties %v, want 0 and none", acks[0].ReasonCode, acks[0].Properties)
	}

	if m := hubtest.Receive(t, seen, jsWait, "the MQTT.js publish at a paho subscriber"); m.Topic != "lab/lamp/set" || m.Payload != `{"on":true}` {
		t.Fatalf("the paho subscriber got %+v, want {\"on\":true} on lab/lamp/set", m)
	}
	if events := hubtest.Eval[[]string](t, b, `clients.app.log.events`); !slices.Equal(events, []string{"connect"}) {
		t.Errorf("MQTT.js's connection went through %q, want only the first connect", events)
	}
	checkConsole(t, b)
}
