package main

import (
	"fmt"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

// The client library (/motehub.js) as the dashboard uses it: its shared
// worker's batches, and requests made before the connection opens.

// TestLibrarySharedWorkerBatches: the shared worker posts a tab its events
// in batches (docs/client.md, Tabs): at most 100 entries each, a device at
// most once and the status at most once per batch, and the messages all
// there, in the hub's order, in far fewer posts than messages.
func TestLibrarySharedWorkerBatches(t *testing.T) {
	t.Parallel()
	const n = 1000
	h := startHub(t, "--demo") // the demo's devices change every second: device events too
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	// Keep a hand on the port of the library's worker, as the tab gets it.
	mode := evalAsync[string](t, b, `(async () => {
		const { connect } = await import("/motehub.js");
		const Original = window.SharedWorker, posts = [];
		window.SharedWorker = class extends Original {
			constructor(...args) {
				super(...args);
				this.port.addEventListener("message", (e) => posts.push(e.data));
			}
		};
		const hub = connect("/", { shared: true, name: "batch-test", subscribe: ["batch/#"], state: false });
		window.SharedWorker = Original;
		window.batchTest = { hub, posts, got: [] };
		hub.on("message", (m) => batchTest.got.push(m));
		await new Promise((resolve) => (hub.status.state === "open" ? resolve() : hub.on("status", (s) => s.state === "open" && resolve())));
		return hub.mode;
	})()`)
	if mode != "shared" {
		t.Fatalf("mode %q, want shared", mode)
	}
	c := hubtest.ConnectMQTT(t, h.MQTT, "batch-publisher")
	for i := range n {
		hubtest.PublishMQTT(t, c, fmt.Sprintf("batch/%d", i), 1, false, []byte(fmt.Sprint(i)))
	}
	b.WaitJS(t, hubtest.Timeout, fmt.Sprintf(`batchTest.got.length >= %d`, n), `batchTest.got.length`)
	got := hubtest.Eval[map[string]any](t, b, `(() => {
		const batches = batchTest.posts.filter((p) => Array.isArray(p.batch)).map((p) => p.batch);
		const inBatches = batches.flatMap((b) => b.filter((e) => e.event === "messages").flatMap((e) => e.value.map((m) => m.payload)));
		const ids = batchTest.got.map((m) => m.id.split("-")[1] * 1);
		return {
			posts: batchTest.posts.length,
			batches: batches.length,
			largest: Math.max(...batches.map((b) => b.length)),
			devicesTwice: batches.filter((b) => { const ids = b.filter((e) => e.event === "device").map((e) => e.value.id); return new Set(ids).size !== ids.length; }).length,
			deviceEvents: batches.reduce((n, b) => n + b.filter((e) => e.event === "device").length, 0),
			statusTwice: batches.filter((b) => b.filter((e) => e.event === "status").length > 1).length,
			inOrder: batchTest.got.every((m, i) => m.payload === i) && inBatches.every((p, i) => p === i) && ids.every((id, i) => i === 0 || id > ids[i - 1]),
			messages: batchTest.got.length,
			inBatches: inBatches.length,
		};
	})()`)
	if got["largest"].(float64) > 100 {
		t.Errorf("a batch of %v entries, want at most 100", got["largest"])
	}
	if got["devicesTwice"].(float64) != 0 || got["statusTwice"].(float64) != 0 {
		t.Errorf("%v batches hold a device twice, %v the status twice (all: %v)", got["devicesTwice"], got["statusTwice"], got)
	}
	if got["deviceEvents"].(float64) == 0 {
		t.Errorf("no device event reached the tab: the batches of device events were not tested (all: %v)", got)
	}
	if got["messages"].(float64) != n || got["inBatches"].(float64) != n || got["inOrder"] != true {
		t.Errorf("%v messages delivered, %v in batches, in order %v: want all %d, in order", got["messages"], got["inBatches"], got["inOrder"], n)
	}
	if got["posts"].(float64) > n/4 {
		t.Errorf("%v posts to the tab for %d messages: not batched", got["posts"], n)
	}
	checkConsole(t, b)
}

// TestLibraryRequestsWaitForTheConnection: devices() and command() made at
// once after connect() wait for the connection to open (they failed with
// "unavailable" in a tab whose shared worker had not connected yet), with
// the shared worker and with a connection of the tab's own.
func TestLibraryRequestsWaitForTheConnection(t *testing.T) {
	t.Parallel()
	h := startHub(t, "--demo")
	b := hubtest.NewBrowser(t)
	openDashboard(t, b, h, "")
	got := evalAsync[map[string]string](t, b, `(async () => {
		const { connect } = await import("/motehub.js");
		const out = {};
		for (const shared of [true, false]) {
			const hub = connect("/", { shared, name: "early", subscribe: ["nodes/#"], state: false });
			const before = hub.status.state;
			try {
				const [devices, res] = await Promise.all([hub.devices(), hub.command("`+relay+`/set", { state: true })]);
				out[shared ? "shared" : "direct"] = before + " " + hub.mode + " " + (devices.length > 0) + " " + res.ok;
			} catch (err) {
				out[shared ? "shared" : "direct"] = before + " " + hub.mode + " " + err.code + ": " + err.message;
			}
			hub.close();
		}
		return out;
	})()`)
	for mode, want := range map[string]string{"shared": "connecting shared true true", "direct": "connecting direct true true"} {
		if got[mode] != want {
			t.Errorf("%s: %q, want %q (the state when asked, the mode, devices known, command confirmed)", mode, got[mode], want)
		}
	}
	// The command reached the relay: it is on.
	b.WaitJS(t, hubtest.Timeout, `tileText("`+relay+`", ".badge") === "on"`, `tileText("`+relay+`", ".badge")`)
	checkConsole(t, b)
}
