package hubtest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// mqttjsDir holds the npm package mqtt (MQTT.js), pinned in its
// package.json and package-lock.json; `make test` runs npm ci there when
// its node_modules is missing. It is under testdata so that the go tool
// never looks into node_modules.
const mqttjsDir = "internal/hubtest/testdata/mqttjs"

// MQTTJS returns the path of MQTT.js's browser bundle (dist/mqtt.min.js,
// which defines the global mqtt), at the version internal/hubtest/testdata/mqttjs
// pins. When it is not installed, or another version is, the test is
// skipped loudly, or fails under HUB_REQUIRE_ALL=1 (see [RequireCommand]).
// Nothing is downloaded here: `make test` installs it.
func MQTTJS(t testing.TB) string {
	t.Helper()
	bundle := filepath.Join(MQTTJSPackage(t), "dist", "mqtt.min.js")
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("MQTT.js is installed without its browser bundle: %v", err)
	}
	return bundle
}

// MQTTJSPackage returns the directory of the npm package mqtt, for Node
// (require it), checked as [MQTTJS] checks it.
func MQTTJSPackage(t testing.TB) string {
	t.Helper()
	return pinnedPackage(t, mqttjsDir, "mqtt", "MQTT.js")
}

// MQTTJSPage serves, on a free loopback port until the test ends, a page
// that loads MQTT.js and the recorder below, and returns its URL (which is
// also its origin: a hub must allow it, --allow-origin, for the page's
// MQTT over WebSocket). In the page, once window.openMQTT is defined:
//
//   - openMQTT(name, url, options) connects an MQTT.js client (MQTT v5 and a
//     reconnect after 1 s unless options say otherwise; clientId name) and
//     records into clients[name].log: events, the names of the client's
//     connect/reconnect/close/offline/disconnect/end/error events in order
//     (an error with its message); messages, {topic, payload, retain, qos,
//     properties} per message; acks, {cmd, messageId, reasonCode,
//     properties} per PUBACK or PUBREC received.
//   - subscribeMQTT(name, filter, options) and publishMQTT(name, id, topic,
//     payload, options) subscribe and publish; their outcome lands in
//     clients[name].log.subscribed[filter] and .published[id]:
//     {done, error, messageId} (error null when the broker took it).
func MQTTJSPage(t testing.TB) string {
	t.Helper()
	bundle := MQTTJS(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(mqttjsPage))
	})
	mux.HandleFunc("GET /mqtt.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, bundle)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

const mqttjsPage = `<!doctype html>
<meta charset="utf-8">
<title>MQTT.js</title>
<link rel="icon" href="data:,">
<script src="/mqtt.min.js"></script>
<script>
"use strict";
window.clients = {};
window.openMQTT = (name, url, options) => {
	const log = {events: [], messages: [], acks: [], subscribed: {}, published: {}};
	const client = mqtt.connect(url, Object.assign({clientId: name, protocolVersion: 5, reconnectPeriod: 1000, connectTimeout: 10000}, options));
	for (const ev of ["connect", "reconnect", "close", "offline", "disconnect", "end", "error"]) {
		client.on(ev, (arg) => log.events.push(arg instanceof Error ? ev + ": " + arg.message : ev));
	}
	client.on("message", (topic, payload, packet) => log.messages.push({
		topic, payload: new TextDecoder().decode(payload), retain: packet.retain, qos: packet.qos, properties: packet.properties ?? {},
	}));
	client.on("packetreceive", (p) => {
		if (p.cmd === "puback" || p.cmd === "pubrec") {
			log.acks.push({cmd: p.cmd, messageId: p.messageId, reasonCode: p.reasonCode, properties: p.properties ?? {}});
		}
	});
	clients[name] = {client, log};
	return true;
};
const outcome = (err, packet) => ({done: true, error: err ? String(err.message ?? err) : null, messageId: packet?.messageId ?? 0});
window.subscribeMQTT = (name, filter, options) => {
	const {client, log} = clients[name];
	log.subscribed[filter] = {done: false};
	client.subscribe(filter, options ?? {qos: 1}, (err, granted) => {
		log.subscribed[filter] = outcome(err);
		if (!err && granted.some((g) => g.qos >= 0x80)) log.subscribed[filter].error = "refused: " + JSON.stringify(granted);
	});
	return true;
};
window.publishMQTT = (name, id, topic, payload, options) => {
	const {client, log} = clients[name];
	log.published[id] = {done: false};
	client.publish(topic, payload, options ?? {}, (err, packet) => { log.published[id] = outcome(err, packet); });
	return true;
};
</script>
`
