package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/history"
)

// historyAPI serves GET /api/history: the recent messages of a topic
// (?topic=&limit=, api.recent), or, given any of the series form's
// parameters, series from the history on disk over a time range, as JSON
// or streamed as CSV or NDJSON (docs/history.md). The ACL is /api/state's:
// a topic the reader may not read is a 403, and a device's series are the
// ones the reader may read.
type historyAPI struct {
	hub    *bridge.Hub
	rec    *history.Recorder // nil: no history (503)
	off    error             // with rec nil, why (else: the flags)
	authz  *auth.Authorizer
	recent http.HandlerFunc // the recent messages form
	now    func() time.Time
	refuser
}

// timeLayout is how the history's times are written: RFC 3339 in
// milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// series is one series to answer: its topic and field, and what the
// device model says of it.
type series struct {
	topic, field string
	unit         string
	entity, name string // the device's entity, in a device's answer
}

func (h *historyAPI) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !isSeriesForm(q) {
		h.recent(w, r)
		return
	}
	req, err := parseHistoryQuery(q, h.now())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if h.rec == nil {
		msg := "this hub keeps no history: it needs --data, and --history-bytes above 0"
		if h.off != nil {
			msg = h.off.Error()
		}
		h.writeError(w, r, &bridge.Error{Code: bridge.CodeUnavailable, Message: msg})
		return
	}
	who := auth.IdentityFrom(r.Context())
	list, dev, err := h.seriesOf(who, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if req.Format != "json" {
		h.export(w, r, req, dev, list)
		return
	}
	h.answerJSON(w, r, req, dev, list)
}

// writeError answers r with err; a refusal (403) is reported.
func (h *historyAPI) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := bridge.AsError(err)
	h.refuse(w, r, bridge.HTTPStatus(e.Code), e.Code, e.Message, claimedUser(r))
}

// seriesOf is what req asks for that who may read: one topic's series
// (a 403 when who may not read it), or a device's (the device as who
// sees it, a 404 when it sees none of it).
func (h *historyAPI) seriesOf(who auth.Identity, req historyRequest) ([]series, *devices.Device, error) {
	if req.Device == "" {
		if !h.authz.Allowed(who, auth.Read, req.Topic) {
			return nil, nil, &bridge.Error{Code: bridge.CodeForbidden, Message: fmt.Sprintf("%s may not read this topic", who), Topic: req.Topic}
		}
		return []series{{topic: req.Topic, field: req.Field, unit: h.unitOf(who, req.Topic, req.Field)}}, nil, nil
	}
	d, ok := h.hub.Device(who, req.Device)
	if !ok {
		return nil, nil, &bridge.Error{Code: bridge.CodeUnknownDevice, Message: fmt.Sprintf("no device %q", req.Device)}
	}
	var list []series
	seen := make(map[[2]string]bool, len(d.Entities)) // at most the device's entities
	for _, e := range d.Entities {
		key := [2]string{e.Topic, e.Field}
		if e.Topic == "" || seen[key] || !h.authz.Allowed(who, auth.Read, e.Topic) {
			continue // a button, or a value another entity has
		}
		seen[key] = true
		list = append(list, series{topic: e.Topic, field: e.Field, unit: e.Unit, entity: e.ID, name: e.Name})
	}
	return list, &d, nil
}

// unitOf is the unit the device model gives the series, or "".
func (h *historyAPI) unitOf(who auth.Identity, topic, field string) string {
	for _, d := range h.hub.Devices(who) {
		for _, e := range d.Entities {
			if e.Topic == topic && e.Field == field && e.Unit != "" {
				return e.Unit
			}
		}
	}
	return ""
}

// answerJSON answers one series, or a device's, as JSON.
func (h *historyAPI) answerJSON(w http.ResponseWriter, r *http.Request, req historyRequest, dev *devices.Device, list []series) {
	var buf []byte
	if dev != nil {
		buf = append(buf, `{"device":`...)
		buf = appendJSONString(buf, dev.ID)
		buf = append(buf, `,"name":`...)
		buf = appendJSONString(buf, dev.Name)
		buf = append(buf, `,"series":[`...)
	}
	n := 0
	for _, s := range list {
		res, err := h.rec.Query(r.Context(), req.query(s.topic, s.field))
		if errors.Is(err, history.ErrNoSeries) && dev != nil {
			continue // an entity with no history yet
		}
		if err != nil {
			h.queryFailed(w, r, s, err)
			return
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendSeriesJSON(buf, s, res, req.Zone)
	}
	if dev != nil {
		buf = append(buf, "]}"...)
	}
	buf = append(buf, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

// queryFailed answers a query that failed, before anything was written.
func (h *historyAPI) queryFailed(w http.ResponseWriter, r *http.Request, s series, err error) {
	switch {
	case r.Context().Err() != nil:
		return // the client left
	case errors.Is(err, history.ErrNoSeries):
		h.writeError(w, r, &bridge.Error{Code: bridge.CodeNotFound, Message: fmt.Sprintf("no history of %s", seriesName(s))})
	case errors.Is(err, history.ErrBadQuery):
		h.writeError(w, r, &bridge.Error{Code: bridge.CodeBadRequest, Message: err.Error()})
	case errors.Is(err, history.ErrDamaged):
		h.writeError(w, r, &bridge.Error{Code: bridge.CodeUnavailable, Message: err.Error()})
	case errors.Is(err, context.DeadlineExceeded):
		h.writeError(w, r, &bridge.Error{Code: bridge.CodeUnavailable, Message: "the history took too long to read: " + err.Error()})
	default:
		h.writeError(w, r, &bridge.Error{Code: bridge.CodeInternal, Message: "reading the history: " + err.Error()})
	}
}

// seriesName names a series for people: its topic, and its field if any.
func seriesName(s series) string {
	if s.field == "" {
		return s.topic
	}
	return s.topic + " " + s.field
}

// appendSeriesJSON appends the JSON object of one series (docs/history.md).
func appendSeriesJSON(buf []byte, s series, res *history.Result, zone *time.Location) []byte {
	str := func(key, v string) {
		buf = append(buf, '"')
		buf = append(buf, key...)
		buf = append(buf, `":`...)
		buf = appendJSONString(buf, v)
	}
	buf = append(buf, '{')
	str("topic", s.topic)
	buf = append(buf, ',')
	str("field", s.field)
	buf = append(buf, ',')
	str("unit", s.unit)
	if s.entity != "" {
		buf = append(buf, ',')
		str("entity", s.entity)
		buf = append(buf, ',')
		str("name", s.name)
	}
	buf = append(buf, ',')
	str("kind", res.Kind)
	buf = append(buf, ',')
	str("resolution", string(res.Resolution))
	buf = append(buf, `,"step_ms":`...)
	buf = strconv.AppendInt(buf, res.Step.Milliseconds(), 10)
	buf = append(buf, ',')
	str("from", res.From.In(zone).Format(timeLayout))
	buf = append(buf, ',')
	str("to", res.To.In(zone).Format(timeLayout))
	buf = append(buf, `,"points":[`...)
	for i, p := range res.Points {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendPointJSON(buf, "", "", res.Kind, p, zone)
	}
	buf = append(buf, `],"gaps":[`...)
	for i, g := range res.Gaps {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '{')
		str("from", g.From.In(zone).Format(timeLayout))
		buf = append(buf, ',')
		str("to", g.To.In(zone).Format(timeLayout))
		buf = append(buf, ',')
		str("reason", g.Reason)
		buf = append(buf, '}')
	}
	buf = append(buf, `],"truncated":`...)
	buf = strconv.AppendBool(buf, res.Truncated)
	return append(buf, '}')
}

// appendPointJSON appends one point: {"t","min","max","mean","last","count"}
// of a number, {"t","text"} of a text series; with topic set (NDJSON),
// "topic" and "field" first.
func appendPointJSON(buf []byte, topic, field, kind string, p history.Point, zone *time.Location) []byte {
	buf = append(buf, '{')
	if topic != "" {
		buf = append(buf, `"topic":`...)
		buf = appendJSONString(buf, topic)
		buf = append(buf, `,"field":`...)
		buf = appendJSONString(buf, field)
		buf = append(buf, ',')
	}
	buf = append(buf, `"t":"`...)
	buf = p.Time.In(zone).AppendFormat(buf, timeLayout)
	buf = append(buf, '"')
	if kind == "text" {
		buf = append(buf, `,"text":`...)
		buf = appendJSONString(buf, p.Text)
		return append(buf, '}')
	}
	for _, f := range []struct {
		key string
		v   float64
	}{{`,"min":`, p.Min}, {`,"max":`, p.Max}, {`,"mean":`, p.Mean}, {`,"last":`, p.Last}} {
		buf = append(buf, f.key...)
		buf = appendNumber(buf, f.v)
	}
	buf = append(buf, `,"count":`...)
	buf = strconv.AppendInt(buf, p.Count, 10)
	return append(buf, '}')
}

// appendNumber appends v as JSON: the shortest form that reads back as v,
// and null for what JSON cannot hold (an infinite mean of huge values).
func appendNumber(buf []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(buf, "null"...)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(buf, b...)
}
