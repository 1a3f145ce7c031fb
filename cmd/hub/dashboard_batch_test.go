package main

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

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
