package main

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestDashboardEventBatch: the worker's batches (batch.js) hold at most
// BATCH_MAX events; a device comes once per batch, as its latest change;
// the status likewise; lines come all, in order, joined; other events keep
// their place; nothing waits after a flush.
func TestDashboardEventBatch(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/"))
	got := evalAsync[map[string]any](t, b, `(async () => {
		const { EventBatch, BATCH_MAX } = await import("/assets/js/batch.js");
		const batches = [];
		const batch = new EventBatch((b) => batches.push(b), 60_000);
		const device = (i, v) => ({type: "device", device: {id: "d" + i, entities: [], value: v}});
		let sent = 0;
		for (let v = 0; v < 1000; v++) {
			batch.add(device(v % 5, v));
			batch.add({type: "lines", lines: [{topic: "t", payload: sent++}, {topic: "t", payload: sent++}]});
			if (v % 100 === 50) batch.add({type: "status", status: {state: "live", n: v}});
			if (v === 10) batch.add({type: "command", command: {id: "c1"}});
		}
		const waiting = batch.size;
		batch.flush();
		const lines = batches.flatMap((b) => b.events.filter((e) => e.type === "lines").flatMap((e) => e.lines.map((l) => l.payload)));
		const oneDevicePerBatch = batches.every((b) => {
			const ids = b.events.filter((e) => e.type === "device").map((e) => e.device.id);
			return new Set(ids).size === ids.length;
		});
		const last = batches[batches.length - 1].events;
		return {
			batches: batches.length,
			largest: Math.max(...batches.map((b) => b.events.length)),
			max: BATCH_MAX,
			oneDevicePerBatch,
			statusPerBatch: Math.max(...batches.map((b) => b.events.filter((e) => e.type === "status").length)),
			linesInOrder: lines.length === sent && lines.every((p, i) => p === i),
			linesEvents: Math.max(...batches.map((b) => b.events.filter((e) => e.type === "lines").length)),
			commands: batches.flatMap((b) => b.events).filter((e) => e.type === "command").length,
			latestD4: last.filter((e) => e.type === "device" && e.device.id === "d4").map((e) => e.device.value).join(),
			waiting,
			afterFlush: batch.size,
		};
	})()`)
	if got["largest"].(float64) > got["max"].(float64) {
		t.Errorf("a batch of %v events, want at most %v", got["largest"], got["max"])
	}
	if got["afterFlush"].(float64) != 0 || got["waiting"].(float64) > got["max"].(float64) {
		t.Errorf("%v events waited (at most %v), %v after the flush (want 0)", got["waiting"], got["max"], got["afterFlush"])
	}
	if got["batches"].(float64) < 2 {
		t.Errorf("%v batches for 3,000 events", got["batches"])
	}
	for k, want := range map[string]any{"oneDevicePerBatch": true, "statusPerBatch": 1.0, "linesInOrder": true, "commands": 1.0, "latestD4": "999"} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
	checkConsole(t, b)
}

// TestDashboardDeviceUpdateKeepsObjects: a device's update that changes
// values only keeps the objects the store had (fewer for the garbage
// collector to copy), with the new values and a new point on the chart; one
// that changes the list of entities gets new entities (the old ones are
// left as they were).
func TestDashboardDeviceUpdateKeepsObjects(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/"))
	got := evalAsync[map[string]any](t, b, `(async () => {
		const { Store } = await import("/assets/js/store.js");
		const s = new Store(async () => []);
		const device = (v, extra = []) => ({id: "homie:d", name: "d", convention: "homie", availability: "online", updated: new Date(1e12 + v).toISOString(),
			entities: [{id: "t", name: "t", kind: "sensor", type: "number", unit: "°C", topic: "homie/d/n/t", value: v, updated: new Date(1e12 + v).toISOString()}, ...extra]});
		s.apply({type: "device", device: device(1)});
		const d1 = s.models.get("homie:d"), e1 = d1.entities[0];
		s.apply({type: "device", device: device(2)});
		const d2 = s.models.get("homie:d");
		const kept = d2 === d1 && d2.entities[0] === e1;
		const value = e1.value + " " + d2.updated;
		const points = s.entitySeries.get("homie:d\nt").series.map((p) => p.v).join();
		s.apply({type: "device", device: device(3, [{id: "u", name: "u", kind: "sensor", type: "text", topic: "homie/d/n/u", value: "x"}])});
		const d3 = s.models.get("homie:d");
		return {kept, value, points, replaced: d3.entities.length === 2 && d3.entities[0] !== e1 && d3.entities[0].value === 3 && e1.value === 2};
	})()`)
	want := map[string]any{"kept": true, "value": "2 2001-09-09T01:46:40.002Z", "points": "1,2", "replaced": true}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	checkConsole(t, b)
}
