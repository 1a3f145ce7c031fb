package web

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/topics"
)

// The bounds of a history query (docs/history.md).
const (
	historyDefaultRange = 24 * time.Hour
	historyMaxRange     = 5 * 366 * 24 * time.Hour // five years, leap days included
	historyMaxZoneName  = 64                       // the longest IANA names are about 30
)

// historyFormats are the answers GET /api/history gives in its series form.
var historyFormats = map[string]bool{"json": true, "csv": true, "ndjson": true}

// seriesFormKeys are the parameters that ask for the series form of GET
// /api/history; without any of them, it answers the recent messages
// (?topic=&limit=), as it always did.
var seriesFormKeys = []string{"device", "field", "from", "to", "points", "resolution", "format", "tz"}

// isSeriesForm says whether q asks for the series form.
func isSeriesForm(q url.Values) bool {
	for _, k := range seriesFormKeys {
		if q.Has(k) {
			return true
		}
	}
	return false
}

// historyRequest is a parsed series-form query.
type historyRequest struct {
	Topic, Field string // one series, or
	Device       string // a device's series
	From, To     time.Time
	Points       int
	Resolution   history.Resolution // "" for the level chosen from the range
	Format       string             // json, csv or ndjson
	Zone         *time.Location     // of the times answered; UTC by default
}

// query is the recorder's query of one series of r.
func (r historyRequest) query(topic, field string) history.Query {
	return history.Query{Topic: topic, Field: field, From: r.From, To: r.To, Points: r.Points, Resolution: r.Resolution}
}

// parseHistoryQuery reads the series form of GET /api/history, with
// relative times counted back from now. Every mistake is a *bridge.Error
// with CodeBadRequest that names the parameter.
func parseHistoryQuery(q url.Values, now time.Time) (historyRequest, error) {
	req := historyRequest{Topic: q.Get("topic"), Field: q.Get("field"), Device: q.Get("device"),
		Points: history.DefaultPoints, Format: "json", Zone: time.UTC}
	switch {
	case req.Topic != "" && req.Device != "":
		return req, badHistoryQuery("give ?topic= or ?device=, not both")
	case req.Topic == "" && req.Device == "":
		return req, badHistoryQuery("?topic= or ?device= is required")
	case req.Device != "" && req.Field != "":
		return req, badHistoryQuery("?field= goes with ?topic=: ?device= answers all of the device's series")
	case q.Has("limit"):
		return req, badHistoryQuery("?limit= is for the recent messages (?topic=&limit= alone); the series form takes ?points=")
	}
	if req.Topic != "" {
		if err := topics.ValidateTopic(req.Topic); err != nil {
			return req, &bridge.Error{Code: bridge.CodeBadTopic, Message: fmt.Sprintf("?topic=: %v", err), Topic: req.Topic}
		}
	}
	if len(req.Field) > 1024 || len(req.Device) > 1024 {
		return req, badHistoryQuery("?field= and ?device= are at most 1024 bytes")
	}
	var err error
	if req.From, err = parseHistoryTime(q.Get("from"), now, now.Add(-historyDefaultRange)); err != nil {
		return req, badHistoryQuery("?from=: " + err.Error())
	}
	if req.To, err = parseHistoryTime(q.Get("to"), now, now); err != nil {
		return req, badHistoryQuery("?to=: " + err.Error())
	}
	switch {
	case !req.From.Before(req.To):
		return req, badHistoryQuery(fmt.Sprintf("?from= (%s) must be before ?to= (%s)", req.From.Format(time.RFC3339), req.To.Format(time.RFC3339)))
	case req.To.Sub(req.From) > historyMaxRange:
		return req, badHistoryQuery("the range from ?from= to ?to= is over 5 years")
	}
	if s := q.Get("points"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > history.MaxPoints {
			return req, badHistoryQuery(fmt.Sprintf("?points= must be a whole number from 1 to %d", history.MaxPoints))
		}
		req.Points = n
	}
	switch res := history.Resolution(q.Get("resolution")); res {
	case "", history.Raw, history.FiveMinute, history.Hourly:
		req.Resolution = res
	default:
		return req, badHistoryQuery("?resolution= must be raw, 5m or 1h (or absent: chosen from the range)")
	}
	if f := q.Get("format"); f != "" {
		if !historyFormats[f] {
			return req, badHistoryQuery("?format= must be json, csv or ndjson")
		}
		req.Format = f
	}
	if tz := q.Get("tz"); tz != "" {
		zone, err := loadZone(tz)
		if err != nil {
			return req, badHistoryQuery(err.Error())
		}
		req.Zone = zone
	}
	return req, nil
}

func badHistoryQuery(msg string) error {
	return &bridge.Error{Code: bridge.CodeBadRequest, Message: msg}
}

// loadZone reads ?tz=, an IANA time zone name such as Europe/Prague (or
// UTC). "Local" is refused: the hub's own zone means nothing to a browser.
func loadZone(name string) (*time.Location, error) {
	bad := fmt.Errorf("?tz=%q: not a time zone; give an IANA name such as Europe/Prague, or UTC", name)
	if len(name) > historyMaxZoneName || name == "Local" {
		return nil, bad
	}
	zone, err := time.LoadLocation(name) // refuses paths (.., a leading /) itself
	if err != nil {
		return nil, bad
	}
	return zone, nil
}

// historyUnits are the units of a relative time: -30m, -24h, -7d, -2w.
var historyUnits = map[byte]time.Duration{
	's': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour,
}

// parseHistoryTime reads a time of ?from= or ?to=: "" (def), "now", a
// time before now ("-24h": a whole number and one of s, m, h, d, w), or
// RFC 3339 ("2026-05-01T10:00:00Z", fractions and offsets allowed; a
// space for the offset's '+', as an unencoded query gives it).
func parseHistoryTime(s string, now, def time.Time) (time.Time, error) {
	switch {
	case s == "":
		return def, nil
	case s == "now":
		return now, nil
	case s[0] == '-':
		if len(s) < 3 {
			return time.Time{}, fmt.Errorf("%q: a relative time is a whole number of s, m, h, d or w before now, such as -24h or -7d", s)
		}
		unit, ok := historyUnits[s[len(s)-1]]
		digits := s[1 : len(s)-1]
		if !ok || len(digits) > 9 || digits[0] == '+' || digits[0] == '-' {
			return time.Time{}, fmt.Errorf("%q: a relative time is a whole number of s, m, h, d or w before now, such as -24h or -7d", s)
		}
		n, err := strconv.Atoi(digits)
		if err != nil || time.Duration(n) > historyMaxRange/unit+1 {
			return time.Time{}, fmt.Errorf("%q: a relative time is a whole number of s, m, h, d or w, at most 5 years before now", s)
		}
		return now.Add(-time.Duration(n) * unit), nil
	}
	// A '+' of an offset not percent-encoded (%2B) reaches here as a space.
	t, err := time.Parse(time.RFC3339Nano, strings.ReplaceAll(s, " ", "+"))
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-05-01T10:00:00Z), now, or a time before now such as -24h", s)
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("%q: out of range (years 1970 to 9999)", s)
	}
	return t, nil
}
