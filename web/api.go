package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/internal/httpx"
)

// api serves /api/*: publish, state, history, the long poll and the
// devices.
type api struct {
	hub          *bridge.Hub
	maxBodyBytes int64
	refuser
}

// writeError answers r with err; a refusal (forbidden, a limit) is reported.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := bridge.AsError(err)
	a.refuse(w, r, bridge.HTTPStatus(e.Code), e.Code, e.Message, claimedUser(r))
}

// publish: POST /api/publish with the body [topic, payload].
func (a *api) publish(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readJSONBody(w, r, "[topic, payload]")
	if !ok {
		return
	}
	in, err := bridge.ParseMessage(body)
	if err == nil {
		err = a.hub.Publish(r.Context(), auth.IdentityFrom(r.Context()), "", in.Topic, in.Payload)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "topic": in.Topic})
}

// state: GET /api/state?filter=... — the last values: {"id", "values"},
// with "truncated": true and the header X-Motehub-Truncated: true when more
// topics matched than one answer carries (bridge.Config.MaxStateValues).
func (a *api) state(w http.ResponseWriter, r *http.Request) {
	filters := r.URL.Query()["filter"]
	if len(filters) == 0 {
		filters = []string{"#"}
	}
	res, err := a.hub.State(r.Context(), auth.IdentityFrom(r.Context()), "", filters)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if res.Truncated {
		w.Header().Set("X-Motehub-Truncated", "true")
	}
	writeJSON(w, http.StatusOK, res)
}

// history: GET /api/history?topic=...&limit=N — recent messages, oldest
// first (the series form is historyAPI's).
func (a *api) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic := q.Get("topic")
	if topic == "" {
		httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadRequest, "?topic= is required")
		return
	}
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadRequest, "?limit= must be a positive whole number")
			return
		}
		limit = n
	}
	samples, err := a.hub.History(auth.IdentityFrom(r.Context()), topic, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"topic": topic, "values": samples})
}

// defaultPollWait is how long a long poll waits when ?wait= is not given.
const defaultPollWait = 25 * time.Second

// poll: GET /api/poll?since=ID&filter=...&wait=SECONDS — the long poll.
func (a *api) poll(w http.ResponseWriter, r *http.Request) {
	q, err := bridge.ParseStreamQuery(r.URL.Query(), r.Header)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	wait, err := parseWait(r.URL.Query().Get("wait"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := a.hub.Poll(r.Context(), auth.IdentityFrom(r.Context()), "", q, wait)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client left
		}
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// parseWait reads ?wait= in seconds (decimals allowed).
func parseWait(s string) (time.Duration, error) {
	if s == "" {
		return defaultPollWait, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 3600 {
		return 0, &bridge.Error{Code: bridge.CodeBadRequest, Message: "?wait= must be seconds, from 0 to 3600"}
	}
	return time.Duration(f * float64(time.Second)), nil
}

// devicesPrefix is where the device model is served.
const devicesPrefix = "/api/devices/"

// deviceID reads the device id of /api/devices/{id}[/suffix] from the
// escaped path: an id is path-escaped (encodeURIComponent), since ids hold
// ':' and a Zigbee2MQTT friendly name may hold '/' (%2F).
func deviceID(r *http.Request, suffix string) (string, error) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), devicesPrefix)
	rest = strings.TrimSuffix(rest, suffix)
	id, err := url.PathUnescape(rest)
	if err != nil || id == "" || strings.Contains(rest, "/") {
		return "", &bridge.Error{Code: bridge.CodeBadRequest, Message: "the device id in the path must be path-escaped (encodeURIComponent)"}
	}
	return id, nil
}

// devices: GET /api/devices — {"devices": [...]}, the devices the reader
// may read (docs/devices.md).
func (a *api) devices(w http.ResponseWriter, r *http.Request) {
	list := a.hub.Devices(auth.IdentityFrom(r.Context()))
	if list == nil {
		list = []devices.Device{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": list})
}

// device: GET /api/devices/{id} — one device, 404 when there is none the
// reader may read.
func (a *api) device(w http.ResponseWriter, r *http.Request) {
	id, err := deviceID(r, "")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	d, ok := a.hub.Device(auth.IdentityFrom(r.Context()), id)
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, bridge.CodeUnknownDevice, fmt.Sprintf("no device %q", id))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// command: POST /api/devices/{id}/command with {"entity", "value"} — sends
// the command and waits for the device to confirm it (at most the hub's ack
// timeout): {"ok": true, "ms": N}, or an error with the command's code and
// its status (docs/devices.md).
func (a *api) command(w http.ResponseWriter, r *http.Request) {
	id, err := deviceID(r, "/command")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body, ok := a.readJSONBody(w, r, `{"entity": "...", "value": ...}`)
	if !ok {
		return
	}
	var req struct {
		Entity string          `json:"entity"`
		Value  json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(body) == 0 || body[0] != '{' {
		httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadJSON, `the body must be an object {"entity": "...", "value": ...}`)
		return
	}
	res, err := a.hub.Command(r.Context(), auth.IdentityFrom(r.Context()), id, req.Entity, req.Value)
	if err != nil {
		return // the client left
	}
	if !res.OK {
		a.refuse(w, r, bridge.HTTPStatus(res.Code), res.Code, res.Error, claimedUser(r))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// readJSONBody reads a request's application/json body within the size
// bound, answering the errors itself (what says what the body should be).
func (a *api) readJSONBody(w http.ResponseWriter, r *http.Request, what string) ([]byte, bool) {
	return readJSONBody(w, r, a.maxBodyBytes, what)
}

// readJSONBody reads a request's application/json body of at most limit
// bytes, answering the errors itself (what says what the body should be).
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, bridge.CodeBadRequest, "the body must be application/json: "+what)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, bridge.CodeTooLarge, fmt.Sprintf("the body is over %d bytes", mbe.Limit))
		return nil, false
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadRequest, "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}
