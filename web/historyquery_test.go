package web

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/history"
)

var queryNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// TestHistoryQueryParses: the series form's parameters, their defaults,
// relative and RFC 3339 times, and which parameters make the series form.
func TestHistoryQueryParses(t *testing.T) {
	for _, c := range []struct {
		query    string
		from, to time.Time
		points   int
		res      history.Resolution
		format   string
		zone     string
	}{
		{"topic=a/b&format=json", queryNow.Add(-24 * time.Hour), queryNow, history.DefaultPoints, "", "json", "UTC"},
		{"topic=a/b&from=-7d&to=now&points=50&resolution=5m", queryNow.Add(-7 * 24 * time.Hour), queryNow, 50, history.FiveMinute, "json", "UTC"},
		{"topic=a&from=-30m&to=-1m", queryNow.Add(-30 * time.Minute), queryNow.Add(-time.Minute), history.DefaultPoints, "", "json", "UTC"},
		{"device=z2m:plug&from=2026-04-01T00:00:00Z&to=2026-04-02T00:00:00.5Z&format=csv&tz=Europe/Prague",
			time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 2, 0, 0, 0, 5e8, time.UTC), history.DefaultPoints, "", "csv", "Europe/Prague"},
		// An offset's '+' not percent-encoded arrives as a space.
		{"topic=a&from=2026-04-01T02:00:00+02:00&format=ndjson&points=10000&resolution=raw",
			time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), queryNow, history.MaxPoints, history.Raw, "ndjson", "UTC"},
	} {
		q, _ := url.ParseQuery(c.query)
		if !isSeriesForm(q) {
			t.Errorf("%s: not the series form", c.query)
		}
		req, err := parseHistoryQuery(q, queryNow)
		if err != nil {
			t.Errorf("%s: %v", c.query, err)
			continue
		}
		if !req.From.Equal(c.from) || !req.To.Equal(c.to) || req.Points != c.points || req.Resolution != c.res || req.Format != c.format || req.Zone.String() != c.zone {
			t.Errorf("%s: %+v; want from %v to %v, %d points, resolution %q, %s, %s", c.query, req, c.from, c.to, c.points, c.res, c.format, c.zone)
		}
	}
	for _, recent := range []string{"topic=a/b", "topic=a/b&limit=5", "topic=a&_=123"} {
		if q, _ := url.ParseQuery(recent); isSeriesForm(q) {
			t.Errorf("%s: taken for the series form; it is the recent messages'", recent)
		}
	}
}

// TestHistoryQueryRefuses: each mistake is a 400 whose message names the
// parameter.
func TestHistoryQueryRefuses(t *testing.T) {
	for query, want := range map[string]string{
		"format=json":                           "?topic= or ?device= is required",
		"topic=a&device=d":                      "not both",
		"device=d&field=x":                      "?field=",
		"topic=a&limit=1&format=json":           "?limit=",
		"topic=a/%23&format=json":               "?topic=",
		"topic=a/%2B/b&format=json":             "?topic=",
		"topic=a&from=-1h&to=-2h":               "must be before",
		"topic=a&from=now&to=now":               "must be before",
		"topic=a&from=2020-01-01T00:00:00Z":     "over 5 years",
		"topic=a&from=-2000d":                   "5 years",
		"topic=a&from=-99999999999999999999d":   "?from=",
		"topic=a&from=-1y":                      "?from=",
		"topic=a&from=--1h":                     "?from=",
		"topic=a&from=-+1h":                     "?from=",
		"topic=a&from=-h":                       "?from=",
		"topic=a&from=-":                        "?from=",
		"topic=a&from=yesterday":                "?from=",
		"topic=a&to=0001-01-01T00:00:00Z":       "out of range",
		"topic=a&points=0":                      "?points=",
		"topic=a&points=10001":                  "?points=",
		"topic=a&points=ten":                    "?points=",
		"topic=a&resolution=1d":                 "?resolution=",
		"topic=a&format=xml":                    "?format=",
		"topic=a&tz=Mars/Olympus":               "?tz=",
		"topic=a&tz=../../etc/passwd":           "?tz=",
		"topic=a&tz=Local":                      "?tz=",
		"topic=a&tz=" + strings.Repeat("x", 65): "?tz=",
		"topic=a&limit=5&points=3":              "?limit=",
	} {
		q, _ := url.ParseQuery(query)
		_, err := parseHistoryQuery(q, queryNow)
		var e *bridge.Error
		if !errors.As(err, &e) || bridge.HTTPStatus(e.Code) != 400 || !strings.Contains(e.Message, want) {
			t.Errorf("%s: %v, want a 400 saying %q", query, err, want)
		}
	}
}

// FuzzHistoryQuery: any query string either parses into a request within
// the bounds, or is refused with a 400; never a panic.
func FuzzHistoryQuery(f *testing.F) {
	for _, seed := range []string{
		"topic=a/b&from=-24h&to=now&points=300",
		"device=zigbee2mqtt:0x1&format=csv&tz=Europe/Prague",
		"topic=a&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00%2B01:00&resolution=raw",
		"topic=a&from=-7d&format=ndjson",
		"topic=a&from=-99999999d", "topic=a&tz=..%2F..", "topic=%00&field=x", "topic=a&points=-1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := parseHistoryQuery(q, queryNow)
		if err != nil {
			var e *bridge.Error
			if !errors.As(err, &e) || bridge.HTTPStatus(e.Code) != 400 || e.Message == "" {
				t.Fatalf("%q: %v, want a 400 with a message", raw, err)
			}
			return
		}
		switch {
		case (req.Topic == "") == (req.Device == ""):
			t.Fatalf("%q: topic %q, device %q: want exactly one", raw, req.Topic, req.Device)
		case !req.From.Before(req.To) || req.To.Sub(req.From) > historyMaxRange:
			t.Fatalf("%q: range %v to %v", raw, req.From, req.To)
		case req.Points < 1 || req.Points > history.MaxPoints:
			t.Fatalf("%q: points %d", raw, req.Points)
		case !historyFormats[req.Format] || req.Zone == nil:
			t.Fatalf("%q: format %q, zone %v", raw, req.Format, req.Zone)
		}
	})
}
