package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// seriesAnswer is the JSON of one series of GET /api/history.
type seriesAnswer struct {
	Topic, Field, Unit, Kind, Resolution string
	Points                               []struct {
		T                    string
		Min, Max, Mean, Last float64
		Count                int64
		Text                 string
	}
	Gaps []struct{ From, To, Reason string }
}

// historyOf asks GET /api/history?query as user (none: "") and returns the
// status and the body.
func historyOf(t *testing.T, h *runningHub, user, password, query string) (int, http.Header, string) {
	t.Helper()
	var hdr http.Header
	if user != "" {
		hdr = http.Header{"Authorization": {basic(user, password)}}
	}
	return get(t, "GET", "http://"+h.HTTP+"/api/history?"+query, hdr, "")
}

// seriesOf is one series' JSON, failing the test unless it is a 200.
func seriesOf(t *testing.T, h *runningHub, query string) seriesAnswer {
	t.Helper()
	status, _, body := historyOf(t, h, "", "", query)
	var s seriesAnswer
	if status != 200 || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("/api/history?%s: %d %s", query, status, body)
	}
	return s
}

// waitPoints polls the series until it has n raw points.
func waitPoints(t *testing.T, h *runningHub, query string, n int) seriesAnswer {
	t.Helper()
	var s seriesAnswer
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		s = seriesOf(t, h, query)
		return len(s.Points) >= n
	}, "the history never had %d points of %s", n, query)
	return s
}

// TestHistoryFromMQTTAcrossARestart: numbers published over MQTT come back
// from GET /api/history as raw points, as CSV and as NDJSON; after a
// restart on the same --data they are still there, with a hub-down gap
// between the runs; the old ?topic=&limit= form still answers the recent
// messages.
func TestHistoryFromMQTTAcrossARestart(t *testing.T) {
	data := t.TempDir()
	first := startHub(t, "--data", data, "--data-sync-interval", "50ms")
	device := hubtest.ConnectMQTT(t, first.MQTT, "history-device")
	sent := []float64{21.5, 22, -3.25, 1e6, 0}
	raw := "topic=nodes/m1/temp&from=-1h&resolution=raw"
	var s seriesAnswer
	for _, v := range sent { // at once: values that come in one millisecond are each kept
		hubtest.PublishMQTT(t, device, "nodes/m1/temp", 1, false, []byte(strconv.FormatFloat(v, 'g', -1, 64)))
		hubtest.PublishMQTT(t, device, "nodes/m1/json", 1, false, fmt.Appendf(nil, `{"a":{"b":%g},"s":"x%g"}`, v, v))
	}
	s = waitPoints(t, first, raw, len(sent))
	if s.Kind != "number" || s.Resolution != "raw" || len(s.Points) != len(sent) {
		t.Fatalf("the series: %+v; want %d raw numbers", s, len(sent))
	}
	for i, p := range s.Points {
		if p.Last != sent[i] || p.Min != sent[i] || p.Max != sent[i] || p.Count != 1 {
			t.Errorf("point %d: %+v, want %v once", i, p, sent[i])
		}
	}
	field := waitPoints(t, first, "topic=nodes/m1/json&field=a.b&from=-1h&resolution=raw", len(sent))
	if field.Field != "a.b" || field.Points[2].Last != sent[2] {
		t.Errorf("a JSON field's series: %+v", field)
	}
	if old := seriesOf(t, first, "topic=nodes/m1/temp&limit=2"); old.Topic != "nodes/m1/temp" {
		t.Errorf("the recent messages form: %+v", old)
	}
	_, _, recent := historyOf(t, first, "", "", "topic=nodes/m1/temp&limit=2")
	var rec struct{ Values []json.RawMessage }
	if json.Unmarshal([]byte(recent), &rec); len(rec.Values) != 2 {
		t.Errorf("?topic=&limit=2 (the recent messages): %s", recent)
	}

	// CSV: the header names the zone, the topic; a row per point.
	status, hdr, body := historyOf(t, first, "", "", raw+"&format=csv&tz=Europe/Prague")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(rows) != 1+len(sent) {
		t.Fatalf("CSV: %d %v\n%s", status, err, body)
	}
	if !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || !strings.Contains(hdr.Get("Content-Disposition"), "attachment; filename=") {
		t.Errorf("CSV headers: %v", hdr)
	}
	if want := []string{"time (Europe/Prague)", "nodes/m1/temp min", "nodes/m1/temp max", "nodes/m1/temp mean", "nodes/m1/temp last", "nodes/m1/temp count"}; strings.Join(rows[0], "|") != strings.Join(want, "|") {
		t.Errorf("CSV header %q, want %q", rows[0], want)
	}
	prague, _ := time.LoadLocation("Europe/Prague")
	for i, row := range rows[1:] {
		at, err := time.Parse(time.RFC3339Nano, row[0])
		if _, off := at.Zone(); err != nil || off != func() int { _, o := at.In(prague).Zone(); return o }() {
			t.Errorf("CSV row %d: time %q not in Prague's offset", i, row[0])
		}
		if v, _ := strconv.ParseFloat(row[4], 64); v != sent[i] || row[5] != "1" {
			t.Errorf("CSV row %d: %q, want last %v, count 1", i, row, sent[i])
		}
	}

	// NDJSON: a line per point.
	status, _, body = historyOf(t, first, "", "", raw+"&format=ndjson")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if status != 200 || len(lines) != len(sent) {
		t.Fatalf("NDJSON: %d\n%s", status, body)
	}
	for i, line := range lines {
		var p struct {
			Topic, Field, T string
			Last            float64
			Count           int64
		}
		if err := json.Unmarshal([]byte(line), &p); err != nil || p.Topic != "nodes/m1/temp" || p.Last != sent[i] || p.Count != 1 || p.T == "" {
			t.Errorf("NDJSON line %d: %s (%v)", i, line, err)
		}
	}
	text := waitPoints(t, first, "topic=nodes/m1/json&field=s&from=-1h", len(sent))
	if text.Kind != "text" || text.Points[0].Text != "x21.5" {
		t.Errorf("a text field's changes: %+v", text)
	}
	lastBefore := s.Points[len(s.Points)-1].T
	device.Disconnect(0)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	second := startHub(t, "--data", data, "--data-sync-interval", "50ms")
	device = hubtest.ConnectMQTT(t, second.MQTT, "history-device")
	defer device.Disconnect(0)
	hubtest.PublishMQTT(t, device, "nodes/m1/temp", 1, false, []byte("30"))
	s = waitPoints(t, second, raw, len(sent)+1)
	if s.Points[len(sent)-1].T != lastBefore || s.Points[len(sent)].Last != 30 {
		t.Fatalf("after a restart: %+v; want the first run's points, then 30", s.Points)
	}
	gap := false
	for _, g := range s.Gaps {
		if g.Reason == "hub-down" && g.From >= lastBefore && g.To <= s.Points[len(sent)].T {
			gap = true
		}
	}
	if !gap {
		t.Fatalf("no hub-down gap between %s and %s: %+v", lastBefore, s.Points[len(sent)].T, s.Gaps)
	}
	m := scrape(t, second.HTTP)
	if m["motehub_history_series"] < 3 || m["motehub_history_bytes"] <= 0 {
		t.Errorf("/metrics: series %v, bytes %v; want at least 3 series on disk", m["motehub_history_series"], m["motehub_history_bytes"])
	}
}

// TestHistoryErrors: a bad range is a 400 with a JSON error; a series never
// recorded a 404; without --data, or with --history-bytes 0, the series
// form is a 503 while the recent messages still answer.
func TestHistoryErrors(t *testing.T) {
	h := startHub(t, "--data", t.TempDir())
	for query, want := range map[string]int{
		"topic=a&from=-1h&to=-2h":     400,
		"topic=a&from=-2000d":         400,
		"topic=a&points=0":            400,
		"topic=a&tz=Nowhere/Land":     400,
		"topic=a%2F%23&from=-1h":      400,
		"topic=never/seen&from=-1h":   404,
		"topic=never/seen&format=csv": 404,
		"device=nobody:here":          404,
	} {
		status, hdr, body := historyOf(t, h, "", "", query)
		if status != want || hdr.Get("Content-Type") != "application/json" || errorCode(body) == "" {
			t.Errorf("%s: %d %s %s, want %d with a JSON error", query, status, hdr.Get("Content-Type"), body, want)
		}
	}
	for _, args := range [][]string{{}, {"--data", t.TempDir(), "--history-bytes", "0"}} {
		off := startHub(t, args...)
		device := hubtest.ConnectMQTT(t, off.MQTT, "d")
		hubtest.PublishMQTT(t, device, "a", 1, false, []byte("1"))
		device.Disconnect(0)
		if status, _, body := historyOf(t, off, "", "", "topic=a&from=-1h"); status != 503 || errorCode(body) != "unavailable" {
			t.Errorf("%v: %d %s, want 503 unavailable", args, status, body)
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool {
			status, _, body := historyOf(t, off, "", "", "topic=a")
			return status == 200 && strings.Contains(body, `"values":[`) && !strings.Contains(body, `"values":[]`)
		}, "%v: the recent messages of a", args)
		if _, ok := scrape(t, off.HTTP)["motehub_history_series"]; ok {
			t.Errorf("%v: /metrics has the history's metrics with no history", args)
		}
	}
}

// TestHistoryACL: a user reads the history of what they may read: another
// topic is a 403 (JSON, CSV alike), and a device's series are only the
// readable ones, each with the unit the device model gives it.
func TestHistoryACL(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.toml")
	content := fmt.Sprintf("[users.ops]\npassword = %q\nreadwrite = [\"#\"]\n[users.reader]\npassword = %q\nread = [\"node/kitchen/thermometer/#\"]\n",
		hubtest.PasswordHash(t, opsPassword), hubtest.PasswordHash(t, viewerPassword))
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, "--data", t.TempDir(), "--users", users)
	device, err := hubtest.ConnectMQTTAs(h.MQTT, "kitchen-node", "ops", opsPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer device.Disconnect(0)
	const temp, hum = "node/kitchen/thermometer/0:1/temperature", "node/kitchen/hygrometer/0:4/relative-humidity"
	const id = "hardwario:node/kitchen"
	var dev struct {
		Device, Name string
		Series       []seriesAnswer
	}
	for i := range 3 { // each recorded before the next: one raw point per series and millisecond
		hubtest.PublishMQTT(t, device, temp, 1, false, fmt.Appendf(nil, "%d.5", 20+i))
		hubtest.PublishMQTT(t, device, hum, 1, false, fmt.Appendf(nil, "%d", 40+i))
		hubtest.Eventually(t, hubtest.Timeout, func() bool {
			status, _, body := historyOf(t, h, "ops", opsPassword, "device="+url.QueryEscape(id)+"&from=-1h&resolution=raw")
			dev.Series = nil
			return status == 200 && json.Unmarshal([]byte(body), &dev) == nil && len(dev.Series) == 2 &&
				len(dev.Series[0].Points) == i+1 && len(dev.Series[1].Points) == i+1
		}, "ops never saw the kitchen's two series with %d points each: %+v", i+1, &dev)
	}

	for _, q := range []string{"topic=" + hum + "&from=-1h", "topic=" + hum + "&format=csv"} {
		if status, _, body := historyOf(t, h, "reader", viewerPassword, q); status != 403 || errorCode(body) != "forbidden" {
			t.Errorf("reader, %s: %d %s, want 403", q, status, body)
		}
	}
	status, _, body := historyOf(t, h, "reader", viewerPassword, "device="+url.QueryEscape(id)+"&from=-1h&resolution=raw")
	dev.Series = nil
	if status != 200 || json.Unmarshal([]byte(body), &dev) != nil || len(dev.Series) != 1 || dev.Series[0].Topic != temp || dev.Device != id {
		t.Fatalf("reader's view of the device: %d %s; want only %s", status, body, temp)
	}
	// The unit is the device model's, for ?device= and ?topic= alike.
	_, _, devices := get(t, "GET", "http://"+h.HTTP+"/api/devices/"+url.PathEscape(id), http.Header{"Authorization": {basic("reader", viewerPassword)}}, "")
	var model struct {
		Entities []struct{ Topic, Unit string }
	}
	if err := json.Unmarshal([]byte(devices), &model); err != nil || len(model.Entities) != 1 || model.Entities[0].Unit == "" {
		t.Fatalf("the device model: %s", devices)
	}
	if unit := model.Entities[0].Unit; dev.Series[0].Unit != unit {
		t.Errorf("?device= unit %q, the model's %q", dev.Series[0].Unit, unit)
	}
	status, _, body = historyOf(t, h, "reader", viewerPassword, "topic="+temp+"&from=-1h")
	var one seriesAnswer
	if status != 200 || json.Unmarshal([]byte(body), &one) != nil || one.Unit != model.Entities[0].Unit {
		t.Errorf("?topic= of the thermometer: %d %s; want the model's unit %q", status, body, model.Entities[0].Unit)
	}
	// A device's CSV: one row per point of each readable series.
	status, _, body = historyOf(t, h, "reader", viewerPassword, "device="+url.QueryEscape(id)+"&from=-1h&resolution=raw&format=csv")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(rows) != 4 || rows[0][1] != "topic" || rows[1][1] != temp || rows[1][3] != model.Entities[0].Unit {
		t.Errorf("reader's CSV of the device: %d %v\n%s", status, err, body)
	}
}

// TestReplicaRecordsWithNoBrowser: a replica with --upstream and --data
// stays subscribed upstream to --history-topics and records them while no
// browser watches; what it does not record it has no history of.
func TestReplicaRecordsWithNoBrowser(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	h := startReplica(t, m, "--data", t.TempDir(), "--history-topics", "plant/#", "--data-sync-interval", "50ms")
	device := hubtest.ConnectMQTT(t, m.Addr(), "plant-sensor")
	defer device.Disconnect(0)
	var s seriesAnswer
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		hubtest.PublishMQTT(t, device, "plant/boiler/pressure", 1, false, []byte("1.5"))
		hubtest.PublishMQTT(t, device, "other/x", 1, false, []byte("7"))
		status, _, body := historyOf(t, h, "", "", "topic=plant/boiler/pressure&from=-1h&resolution=raw")
		return status == 200 && json.Unmarshal([]byte(body), &s) == nil && len(s.Points) > 0
	}, "the replica never recorded plant/boiler/pressure")
	if s.Points[0].Last != 1.5 {
		t.Fatalf("recorded %+v", s.Points)
	}
	if status, _, body := historyOf(t, h, "", "", "topic=other/x&from=-1h"); status != 404 {
		t.Errorf("other/x, outside --history-topics: %d %s, want 404", status, body)
	}
	if metric(t, h, "motehub_bus_subscriptions") < 1 {
		t.Errorf("motehub_bus_subscriptions %v with no browser, want the history's", metric(t, h, "motehub_bus_subscriptions"))
	}
}
