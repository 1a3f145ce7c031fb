package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/history"
)

// exportFlushBytes is how much an export gathers before it writes and
// flushes it to the client.
const exportFlushBytes = 32 << 10

// export streams the series of list as CSV or NDJSON (req.Format): every
// stored point of the range, without downsampling (history.Recorder.Export),
// at req.Resolution or the one chosen from the range. The client leaving
// stops the read. A series with no history is a 404 for ?topic=, and left
// out of a device's export.
func (h *historyAPI) export(w http.ResponseWriter, r *http.Request, req historyRequest, dev *devices.Device, list []series) {
	kinds := make([]string, len(list))
	for i, s := range list {
		kinds[i] = h.kindOf(s)
		if kinds[i] == "" && dev == nil {
			h.writeError(w, r, &bridge.Error{Code: bridge.CodeNotFound, Message: fmt.Sprintf("no history of %s", seriesName(s))})
			return
		}
	}
	name := exportName(req, list)
	hdr := w.Header()
	if req.Format == "csv" {
		hdr.Set("Content-Type", "text/csv; charset=utf-8")
		name += ".csv"
	} else {
		hdr.Set("Content-Type", "application/x-ndjson")
		name += ".ndjson"
	}
	hdr.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	out := &streamOut{w: w, rc: http.NewResponseController(w)}
	if req.Format == "csv" {
		out.buf = appendCSVHeader(out.buf, req.Zone, dev, list, kinds)
	}
	for i, s := range list {
		if kinds[i] == "" {
			continue // an entity with no history yet
		}
		kind := kinds[i]
		_, err := h.rec.Export(r.Context(), req.query(s.topic, s.field), func(p history.Point) error {
			if req.Format == "csv" {
				out.buf = appendCSVRow(out.buf, req.Zone, dev != nil, s, kind, p)
			} else {
				out.buf = append(appendPointJSON(out.buf, s.topic, s.field, kind, p, req.Zone), '\n')
			}
			return out.maybeFlush()
		})
		if err != nil {
			if !out.started && r.Context().Err() == nil {
				h.queryFailed(w, r, s, err)
				return
			}
			// Cut the response: a client must not take a partial export
			// for a whole one. (When the client left, nobody reads it.)
			panic(http.ErrAbortHandler)
		}
	}
	if err := out.flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// kindOf is the recorded kind of s ("number" or "text"), or "" when it
// has no history.
func (h *historyAPI) kindOf(s series) string {
	for _, info := range h.rec.Series(s.topic) {
		if info.Topic == s.topic && info.Field == s.field {
			return info.Kind
		}
	}
	return ""
}

// streamOut gathers an export's bytes and writes them in pieces of about
// exportFlushBytes, each flushed to the client.
type streamOut struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	buf     []byte
	started bool // something was written: the status is sent
}

func (o *streamOut) maybeFlush() error {
	if len(o.buf) < exportFlushBytes {
		return nil
	}
	return o.flush()
}

func (o *streamOut) flush() error {
	o.started = true
	if _, err := o.w.Write(o.buf); err != nil {
		return err
	}
	o.buf = o.buf[:0]
	return o.rc.Flush()
}

// exportName is the file name of an export: the series' or the device's,
// and the start of the range, in characters safe in any file system.
func exportName(req historyRequest, list []series) string {
	name := req.Device
	if name == "" && len(list) > 0 {
		name = seriesName(list[0])
	}
	return safeFileName(name) + "_" + req.From.UTC().Format("20060102T150405Z")
}

// safeFileName keeps letters, digits, '.', '-' and '_' of s (others become
// '_'), at most 80 of them.
func safeFileName(s string) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= 80 {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.' || c == '-' || c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "history"
	}
	return strings.Trim(b.String(), ".")
}

// appendCSVHeader appends the header row. One series: its time column
// names the zone, and its columns the series and unit: "time (UTC)",
// "nodes/m1/temp min (°C)", ..., "count" (a text series: "time (UTC)",
// "nodes/m1/state"). A device: one row per point of any of its series,
// "time (UTC)", "topic", "field", "unit", "min", "max", "mean", "last",
// "count", "text".
func appendCSVHeader(buf []byte, zone *time.Location, dev *devices.Device, list []series, kinds []string) []byte {
	cols := []string{"time (" + zone.String() + ")"}
	switch {
	case dev != nil:
		cols = append(cols, "topic", "field", "unit", "min", "max", "mean", "last", "count", "text")
	case len(list) == 1 && kinds[0] == "text":
		cols = append(cols, seriesName(list[0]))
	case len(list) == 1:
		label, unit := seriesName(list[0]), ""
		if list[0].unit != "" {
			unit = " (" + list[0].unit + ")"
		}
		cols = append(cols, label+" min"+unit, label+" max"+unit, label+" mean"+unit, label+" last"+unit, label+" count")
	}
	for i, c := range cols {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendCSVText(buf, c)
	}
	return append(buf, "\r\n"...)
}

// appendCSVRow appends one point's row (see appendCSVHeader).
func appendCSVRow(buf []byte, zone *time.Location, long bool, s series, kind string, p history.Point) []byte {
	buf = p.Time.In(zone).AppendFormat(buf, timeLayout)
	if long {
		buf = append(buf, ',')
		buf = appendCSVText(buf, s.topic)
		buf = append(buf, ',')
		buf = appendCSVText(buf, s.field)
		buf = append(buf, ',')
		buf = appendCSVText(buf, s.unit)
	}
	if kind == "text" {
		if long {
			buf = append(buf, ",,,,,"...) // no min, max, mean, last, count
		}
		buf = append(buf, ',')
		buf = appendCSVText(buf, p.Text)
		return append(buf, "\r\n"...)
	}
	for _, v := range []float64{p.Min, p.Max, p.Mean, p.Last} {
		buf = append(buf, ',')
		if v == v { // NaN: an empty cell
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		}
	}
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, p.Count, 10)
	if long {
		buf = append(buf, ',') // no text
	}
	return append(buf, "\r\n"...)
}

// appendCSVText appends a text cell (RFC 4180): quoted when it holds a
// comma, a quote, a line break or spaces at an end; and, against formulas
// a spreadsheet would run (CSV injection), with a leading quote when it
// starts with = + - @ or a tab.
func appendCSVText(buf []byte, s string) []byte {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		s = "'" + s
	}
	if !strings.ContainsAny(s, ",\"\r\n") && strings.TrimSpace(s) == s {
		return append(buf, s...)
	}
	buf = append(buf, '"')
	buf = append(buf, strings.ReplaceAll(s, `"`, `""`)...)
	return append(buf, '"')
}
