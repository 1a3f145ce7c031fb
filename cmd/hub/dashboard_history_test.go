package main

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestDashboardHistoryBreaks: the rules of the charts' data, run in
// Chromium on answers of the series form written here: a line breaks at a
// gap of the answer and where buckets are missing (never elsewhere), a
// card's chart keeps the breaks as nulls and draws them as separate
// stretches, the detail chart's columns have a null there, and the
// query's address names what is asked and nothing else.
func TestDashboardHistoryBreaks(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	h := startHub(t)
	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.Navigate("http://"+h.HTTP+"/"))
	b.WaitJS(t, hubtest.Timeout, `window.motehub !== undefined`, `document.readyState`)
	ctx, cancel := context.WithTimeout(b.Ctx, hubtest.Timeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(async () => {
		const s = await import("/assets/js/series.js");
		const { Chart } = await import("/assets/js/chart.js");
		const { Plot } = await import("/assets/js/plot.js");
		const at = (min) => new Date(Date.UTC(2026, 0, 1, 10, min)).toISOString();
		const pt = (min, v) => ({t: at(min), min: v - 1, max: v + 1, mean: v, last: v, count: 3});
		// Raw points across a restart of the hub (10:03 to 10:07).
		const raw = {kind: "number", resolution: "raw", step_ms: 0,
			points: [pt(0, 1), pt(1, 2), pt(2, 3), pt(8, 4), pt(9, 5)],
			gaps: [{from: at(3), to: at(7), reason: "hub-down"}]};
		// 5-minute buckets with the 10:10 and 10:15 buckets missing, no gap said.
		const buckets = {kind: "number", resolution: "5m", step_ms: 300000,
			points: [pt(0, 1), pt(5, 2), pt(20, 3), pt(25, 4)], gaps: []};
		const shape = (list) => list.map((p) => p.gap ? "|" : String(p.mean)).join(" ");
		const card = s.cardPoints(raw);
		const chart = new Chart("test");
		chart.update(card, "°C", card.length);
		chart.seen(true);
		const plot = new Plot("test", "°C");
		document.body.append(plot.el);
		plot.show(s.withBreaks(buckets), {resolution: "5m", step: 300000, from: Date.parse(at(0)), to: Date.parse(at(30)), live: false, width: 400});
		const data = plot.data;
		return {
			raw: shape(s.withBreaks(raw)),
			breakAt: new Date(s.withBreaks(raw)[3].t).toISOString(),
			buckets: shape(s.withBreaks(buckets)),
			none: shape(s.withBreaks({points: [pt(0, 1), pt(1, 2)], gaps: [{from: at(5), to: at(6)}]})),
			card: card.map((p) => p.v === null ? "null" : p.v).join(" "),
			cardPath: String((chart.line.getAttribute("d").match(/M/g) ?? []).length) + " " + chart.el.dataset.points,
			plotMean: data[1].map((v) => v === null ? "null" : v).join(" "),
			plotMin: data[2].map((v) => v === null ? "null" : v).join(" "),
			plotBand: plot.el.dataset.band + " " + plot.uplot.series.length,
			url: s.historyURL({topic: "a b/c", field: "", from: "-1h", points: 120, format: undefined}),
			device: s.historyURL({device: "hardwario:nodes/x", from: "2026-01-01T10:00:00.000Z", to: "2026-01-01T11:00:00.000Z", format: "csv"}),
		};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"raw":      "1 2 3 | 4 5",
		"breakAt":  "2026-01-01T10:05:00.000Z",
		"buckets":  "1 2 | 3 4",
		"none":     "1 2", // a gap after the last point breaks nothing
		"card":     "1 2 3 null 4 5",
		"cardPath": "2 5", // two stretches of line; five readings
		"plotMean": "1 2 null 3 4",
		"plotMin":  "0 1 null 2 3",
		"plotBand": "true 4", // time, mean, min, max
		"url":      "/api/history?topic=a+b%2Fc&from=-1h&points=120",
		"device":   "/api/history?device=hardwario%3Anodes%2Fx&from=2026-01-01T10%3A00%3A00.000Z&to=2026-01-01T11%3A00%3A00.000Z&format=csv",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	checkConsole(t, b)
}
