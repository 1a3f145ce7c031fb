package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/motehub/motehub/internal/hubtest"
)

// The detail view's history, in Chromium, against a hub that records one
// (--data in t.TempDir()), fed over MQTT.

// moteTemperature is a HARDWARIO mote's thermometer: the hub's device
// model makes the mote a device, and gives the series its unit (°C).
const moteTemperature = "nodes/mote-7/thermometer/0:1/temperature"

// historyPoint is a point of the series form (docs/history.md).
type historyPoint struct {
	T                    string
	Min, Max, Mean, Last float64
	Count                int64
}

// historyAnswer is one series in the series form.
type historyAnswer struct {
	Topic, Field, Unit, Kind, Resolution, From, To string
	Points                                         []historyPoint
	Gaps                                           []struct{ From, To, Reason string }
}

// getHistory asks the hub's GET /api/history with query (the part after
// "?") and decodes the JSON answer, failing the test on a status not 200.
func getHistory(t *testing.T, h *runningHub, query string) historyAnswer {
	t.Helper()
	var a historyAnswer
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error { return fetchHistory(h, query, &a) })
	return a
}

func fetchHistory(h *runningHub, query string, into any) error {
	client := &http.Client{Timeout: hubtest.Timeout}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + h.HTTP + "/api/history?" + query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /api/history?%s: %s", query, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// waitRecorded waits until the hub's history of topic has n raw points or
// more in the last hour.
func waitRecorded(t *testing.T, h *runningHub, topic string, n int) {
	t.Helper()
	query := "topic=" + url.QueryEscape(topic) + "&from=-1h&resolution=raw&points=10000"
	hubtest.EventuallyNil(t, 3*hubtest.Timeout, func() error {
		var a historyAnswer
		if err := fetchHistory(h, query, &a); err != nil {
			return err
		}
		if len(a.Points) < n {
			return fmt.Errorf("the hub recorded %d points of %s, want %d", len(a.Points), topic, n)
		}
		return nil
	})
}

// publishReadings publishes values to topic, one message each, each
// once the hub has recorded the one before (had recorded of the topic
// before the first), so that each has a time of its own on the chart.
func publishReadings(t *testing.T, h *runningHub, client string, topic string, recorded int, values ...float64) {
	t.Helper()
	c := hubtest.ConnectMQTT(t, h.MQTT, client)
	defer c.Disconnect(0)
	for i, v := range values {
		hubtest.PublishMQTT(t, c, topic, 1, false, []byte(strconv.FormatFloat(v, 'f', -1, 64)))
		waitRecorded(t, h, topic, recorded+i+1)
	}
}

// openDeviceDetail opens the detail view of the card named name and waits
// until its history is shown.
func openDeviceDetail(t *testing.T, b *hubtest.Browser, name string) {
	t.Helper()
	card := `[...document.querySelectorAll(".device-card")].find(c => c.querySelector(".device-name")?.textContent === "` + name + `")`
	b.WaitJS(t, hubtest.Timeout, card+` !== undefined`, `[...document.querySelectorAll(".device-name")].map(e => e.textContent)`)
	hubtest.Eval[bool](t, b, card+`.querySelector(".card-details").click(); true`)
	b.WaitJS(t, hubtest.Timeout, `document.querySelector("dialog.detail[open] .history")?.dataset.state === "done"`,
		`document.querySelector("dialog.detail")?.textContent.slice(0, 300)`)
}

// chartOf is the expression of the detail view's plot of topic (plot.js).
func chartOf(topic string) string {
	return `document.querySelector('dialog.detail .history-chart[data-topic="` + topic + `"] .plot')?.plot`
}

// TestDashboardHistoryChart: a device's detail view charts its series with
// a time axis of readable times and a value axis with the unit, and takes
// live values; a range button asks the hub again for that range, with
// about as many points as the chart is wide; the download link answers
// the CSV of the rows the API has for the range shown.
func TestDashboardHistoryChart(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	h := startHub(t, "--data", t.TempDir())
	values := []float64{21.5, 21.7, 22.1, 21.9, 22.4}
	publishReadings(t, h, "mote-7", moteTemperature, 0, values...)

	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.EmulateViewport(1280, 800))
	openDashboard(t, b, h, "")
	// Every request for history the page makes, as the browser saw it.
	hubtest.Eval[bool](t, b, `window.asked = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.name.includes("/api/history")) asked.push(e.name); }).observe({type: "resource", buffered: true}); true`)
	openDeviceDetail(t, b, "mote-7")
	plot := chartOf(moteTemperature)
	b.WaitJS(t, hubtest.Timeout, plot+`?.data[1].filter(v => v !== null).length === `+strconv.Itoa(len(values)), plot+`?.data`)

	// The axes: times as hours and minutes (the date under the first), the
	// values' axis labelled with the unit, the caption naming it too.
	axes := hubtest.Eval[struct {
		Count        int
		Label        string
		Times, Ticks []string
		Caption      string
	}](t, b, `(() => { const u = `+plot+`.uplot; return {count: u.axes.length, label: u.axes[1].label,
		times: u.axes[0]._values, ticks: u.axes[1]._values,
		caption: document.querySelector('dialog.detail .history-chart[data-topic="`+moteTemperature+`"] figcaption').textContent}; })()`)
	if axes.Count != 2 || axes.Label != "°C" || !strings.Contains(axes.Caption, "°C") {
		t.Errorf("axes %+v: want two, the values' labelled °C and the caption naming °C", axes)
	}
	clock := regexp.MustCompile(`^\d{1,2}:\d{2}`)
	if len(axes.Times) < 2 || !clock.MatchString(axes.Times[0]) || !clock.MatchString(axes.Times[len(axes.Times)-1]) {
		t.Errorf("time axis ticks %q, want times of day", axes.Times)
	}
	if len(axes.Ticks) < 2 {
		t.Errorf("value axis ticks %q, want at least two", axes.Ticks)
	}

	// A live value joins the chart while its range ends now.
	publishReadings(t, h, "mote-7", moteTemperature, len(values), 22.6)
	values = append(values, 22.6)
	b.WaitJS(t, hubtest.Timeout, plot+`.data[1].filter(v => v !== null).join(" ") === "21.5 21.7 22.1 21.9 22.4 22.6"`, plot+`.data[1]`)

	// Hovering the first point shows its exact time and value.
	legend := `[...` + plot + `.uplot.root.querySelectorAll(".u-legend .u-value")].map(e => e.textContent)`
	hubtest.Eval[bool](t, b, `(() => { const u = `+plot+`.uplot; u.setCursor({left: u.valToPos(u.data[0][0], "x"), top: 10}); return true; })()`)
	b.WaitJS(t, hubtest.Timeout, legend+`[1] === "21.5 °C"`, legend)
	if hover := hubtest.Eval[[]string](t, b, legend); !regexp.MustCompile(`\d{4}.*\d{1,2}:\d{2}:\d{2}`).MatchString(hover[0]) {
		t.Errorf("hovering shows %q, want the date and the time to the second", hover)
	}

	// The range buttons: 7 d asks the hub for the last 7 days.
	before := hubtest.Eval[int](t, b, `asked.length`)
	hubtest.Eval[bool](t, b, `document.querySelector('dialog.detail .range[data-from="-7d"]').click(); true`)
	b.WaitJS(t, hubtest.Timeout, `document.querySelector("dialog.detail .history").dataset.from === "-7d" && document.querySelector("dialog.detail .history").dataset.state === "done"`,
		`document.querySelector("dialog.detail .history").dataset.from`)
	b.WaitJS(t, hubtest.Timeout, `asked.length > `+strconv.Itoa(before), `asked`)
	asked := hubtest.Eval[[]string](t, b, `asked.slice(`+strconv.Itoa(before)+`)`)
	width := hubtest.Eval[float64](t, b, `document.querySelector("dialog.detail .history-charts").clientWidth`)
	var sawRange bool
	for _, a := range asked {
		u, err := url.Parse(a)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if q.Get("from") != "-7d" {
			continue
		}
		sawRange = true
		points, _ := strconv.Atoi(q.Get("points"))
		if q.Get("device") == "" || float64(points) < width-2 || float64(points) > width+2 {
			t.Errorf("the 7 d request %s: want the device's series, with points about the chart's width (%v px)", a, width)
		}
	}
	if !sawRange {
		t.Fatalf("after pressing 7 d the page asked %q, no from=-7d", asked)
	}
	if pressed := hubtest.Eval[string](t, b, `document.querySelector('dialog.detail .range[aria-pressed="true"]').textContent`); pressed != "7 d" {
		t.Errorf("the pressed range button is %q, want 7 d", pressed)
	}
	// Seven days at about a point per pixel are 5-minute rollups: the chart
	// draws their min–max band (the mean, min and max series).
	if band := hubtest.Eval[string](t, b, plot+`.el.dataset.resolution + " " + `+plot+`.el.dataset.band + " " + `+plot+`.uplot.series.length`); band != "5m true 4" {
		t.Errorf("over 7 d the chart's resolution, band and series are %q, want 5m true 4", band)
	}

	// The download: the CSV of the series over the range shown, with the
	// rows the API has.
	href := hubtest.Eval[string](t, b, `document.querySelector('dialog.detail .history-chart[data-topic="`+moteTemperature+`"] a.download').href`)
	link, err := url.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	lq := link.Query()
	if lq.Get("format") != "csv" || lq.Get("topic") != moteTemperature || lq.Get("from") == "" || lq.Get("to") == "" {
		t.Fatalf("download link %s: want the series' CSV over the range shown", href)
	}
	rows := downloadCSV(t, href)
	lq.Del("format")
	lq.Set("points", "10000") // the API's most: not downsampled
	api := getHistory(t, h, lq.Encode())
	if len(rows) != len(api.Points)+1 {
		t.Fatalf("the CSV has %d rows, the API %d points: want a header and a row each", len(rows), len(api.Points))
	}
	if !strings.HasPrefix(rows[0][0], "time (") || !strings.Contains(strings.Join(rows[0], ","), "°C") {
		t.Errorf("CSV header %q: want the time zone and the unit", rows[0])
	}
	var readings int64
	for i, p := range api.Points {
		row := rows[i+1]
		readings += p.Count
		if len(row) != 6 || row[1] != fmtFloat(p.Min) || row[2] != fmtFloat(p.Max) || row[3] != fmtFloat(p.Mean) || row[5] != strconv.FormatInt(p.Count, 10) {
			t.Errorf("CSV row %d %q, the API's point %+v", i+1, row, p)
		}
	}
	if readings != int64(len(values)) {
		t.Errorf("the CSV's rows count %d readings, want the %d published", readings, len(values))
	}
	// The whole device's download.
	all := hubtest.Eval[string](t, b, `document.querySelector("dialog.detail a.download-all").href`)
	readings = 0
	for _, row := range downloadCSV(t, all)[1:] { // time, topic, field, unit, min, max, mean, last, count, text
		if n, err := strconv.ParseInt(row[8], 10, 64); err == nil && row[1] == moteTemperature {
			readings += n
		}
	}
	if readings != int64(len(values)) {
		t.Errorf("the device's CSV %s counts %d readings of %s, want the %d published", all, readings, moteTemperature, len(values))
	}
	checkConsole(t, b)
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// downloadCSV gets a download link's CSV: an attachment, with its rows.
func downloadCSV(t *testing.T, href string) [][]string {
	t.Helper()
	client := &http.Client{Timeout: hubtest.Timeout}
	defer client.CloseIdleConnections()
	resp, err := client.Get(href)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("GET %s: %s %q %q, want a CSV attachment", href, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("GET %s: %v", href, err)
	}
	return rows
}

// TestDashboardHistoryRestartGap: after the hub restarts on the same data,
// the detail chart has a break (a null) between the readings of the two
// runs, and so has the card's chart (two stretches of line); a restart
// while the page is open breaks the card's line too, also when the page's
// attempts to connect failed while the hub was away.
func TestDashboardHistoryRestartGap(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	dir := t.TempDir()
	first := startHub(t, "--data", dir)
	publishReadings(t, first, "mote-7", moteTemperature, 0, 20, 20.5, 21)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	second := startHub(t, "--data", dir)
	publishReadings(t, second, "mote-7-again", moteTemperature, 3, 25, 25.5, 26)

	b := hubtest.NewBrowser(t)
	openDashboard(t, b, second, "")
	openDeviceDetail(t, b, "mote-7")
	plot := chartOf(moteTemperature)
	b.WaitJS(t, hubtest.Timeout, plot+`?.data[1].filter(v => v !== null).length === 6`, plot+`?.data`)
	if got := hubtest.Eval[string](t, b, plot+`.data[1].map(v => v === null ? "null" : v).join(" ")`); got != "20 20.5 21 null 25 25.5 26" {
		t.Errorf("the detail chart's values are %q, want the runs' with a null between", got)
	}
	hubtest.Eval[bool](t, b, `document.querySelector("dialog.detail").close(); true`)

	tile := `document.querySelector('.tile[data-topic="` + moteTemperature + `"] .chart')`
	b.WaitJS(t, hubtest.Timeout, tile+`?.dataset.seeded === "6"`, tile+`?.dataset.seeded`)
	stretches := func(n int) {
		t.Helper()
		b.WaitJS(t, hubtest.Timeout, `(`+tile+`.querySelector(".chart-line").getAttribute("d").match(/M/g) ?? []).length === `+strconv.Itoa(n),
			tile+`.querySelector(".chart-line").getAttribute("d")`)
	}
	stretches(2)

	// The hub restarts under the open page, on the same address.
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	b.WaitJS(t, hubtest.Timeout, `connState() === "reconnecting"`, `connState()`)
	// An attempt fails while the hub is away (its close code is not the
	// shutdown's): the line breaks all the same.
	b.WaitJS(t, hubtest.Timeout, `motehub.store.status.closeCode !== 1001`, `JSON.stringify(motehub.store.status)`)
	third := startHub(t, "--data", dir, "--http", second.HTTP)
	b.WaitJS(t, 20*time.Second, `connState() === "live"`, `JSON.stringify(motehub.store.status)`)
	publishReadings(t, third, "mote-7-third", moteTemperature, 6, 30)
	b.WaitJS(t, hubtest.Timeout, tile+`.dataset.points === "7"`, tile+`.dataset.points`)
	stretches(3)
	// While the hub was away, Chromium logs the page's refused attempts to
	// connect: those are expected.
	checkConsole(t, b, regexp.MustCompile(`WebSocket connection to 'ws://`+regexp.QuoteMeta(second.HTTP)+`/ws' failed`))
}

// TestDashboardHistoryScreenshot takes docs/history.png (with -update): the
// detail view of the demo's first mote, whose charts have the hub's
// restart in them (the ASN starts again from another number).
func TestDashboardHistoryScreenshot(t *testing.T) {
	t.Parallel() // waits more than it works: overlaps with the other waiting tests
	const asn = "nodes/mote-1/asn"
	dir := t.TempDir()
	first := startHub(t, "--demo", "--data", dir)
	waitRecorded(t, first, asn, 12)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	// Not synchronisation: an outage long enough to be seen in the picture.
	time.Sleep(3 * time.Second)
	second := startHub(t, "--demo", "--data", dir)
	waitRecorded(t, second, asn, 24)

	b := hubtest.NewBrowser(t)
	b.Do(t, chromedp.EmulateViewport(1280, 800))
	openDashboard(t, b, second, "")
	openDeviceDetail(t, b, "mote-1")
	b.WaitJS(t, hubtest.Timeout, chartOf(asn)+`?.data[1].includes(null)`, chartOf(asn)+`?.data`)
	// A text series is a list of its changes with their times.
	boot := `[...document.querySelectorAll('dialog.detail .history-text[data-topic="nodes/mote-1/boot"][data-field="fw"] li')].map(e => e.textContent)`
	if changes := hubtest.Eval[[]string](t, b, boot); len(changes) == 0 || !strings.HasSuffix(changes[0], "1.0.0") {
		t.Errorf("the boot's firmware changes are %q, want the times of 1.0.0", changes)
	}
	saveScreenshot(t, screenshot(t, b), "history.png")
	checkConsole(t, b)
}

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
		// Live values: a raw chart takes each newer one once, and keeps at
		// most its bound (the oldest go); a bucketed one folds a value into
		// its latest bucket.
		const live = new Plot("live", "", 50);
		document.body.append(live.el);
		const t0 = Date.parse(at(0));
		live.show([], {resolution: "raw", step: 0, from: t0 - 3600000, to: t0, live: true, width: 400});
		for (let i = 1; i <= 100; i++) live.add(t0 + i * 1000, i);
		live.add(t0 + 50000, 999); // older than the latest: not taken
		const folded = new Plot("folded", "", 50);
		document.body.append(folded.el);
		folded.show(s.withBreaks({points: [pt(0, 10)], gaps: [], step_ms: 300000}), {resolution: "5m", step: 300000, from: t0 - 3600000, to: t0 + 1000, live: true, width: 400});
		folded.add(t0 + 2000, 14); // the bucket of 10:00 had 3 readings, mean 10
		folded.add(t0 + 300000, 20); // the next bucket
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
			live: live.data[0].length + " " + live.data[1][0] + " " + live.data[1][49],
			folded: folded.data[1].join(" ") + " | " + folded.data[2].join(" ") + " | " + folded.data[3].join(" "),
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
		"live":     "50 51 100",
		"folded":   "11 20 | 9 20 | 14 20", // mean (10·3 + 14)/4; min 9 and max 11 as the answer said, then 14
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
