package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/httpx"
)

// The admin view's API, under /api/admin (the page is /admin): the MQTT
// clients and browser sessions connected now, with a disconnect, and the
// retained-message manager (browse, clear with a dry run, restore to undo a
// clear). Only admins (auth.Authorizer.Admin) may use it: everyone else
// gets 403. Each action is checked by the same ACL as every other door
// (reading a retained message needs Read access to its topic, clearing or
// restoring one Write access) and logged with the acting user.
//
// The server keeps nothing between requests: a clear answers with the
// messages it removed, and the page keeps them and sends them back to undo
// (restore republishes them, retained, with their QoS).

// Broker is what the admin view asks of the embedded MQTT broker
// (broker.Embedded). Without one (an upstream broker), the MQTT clients and
// retained messages are the upstream's to manage, and those endpoints
// answer "unsupported".
type Broker interface {
	// Clients returns at most limit of the connected MQTT clients from
	// offset on, and how many there are.
	Clients(offset, limit int) ([]bridge.MQTTClient, int)
	// DisconnectClient ends the connection of the client id; false when
	// none is connected.
	DisconnectClient(id string) (bridge.MQTTClient, bool)
	// Retained returns the retained messages matching filter, by topic.
	Retained(filter string) ([]bridge.RetainedMessage, error)
}

// Bounds of the admin API.
const (
	// defaultPage and maxPage bound one listing (?limit=).
	defaultPage = 100
	maxPage     = 1000
	// maxClear and maxClearBytes bound one clear, and one restore: a clear
	// that matches more takes the first ones by topic and says
	// "truncated"; clear again for the rest.
	maxClear      = 10000
	maxClearBytes = 16 << 20
	// maxRestoreBody bounds a restore's body: maxClearBytes of payloads in
	// base64, and the topics.
	maxRestoreBody = maxClearBytes*4/3 + maxClear*1024
	// maxSkipped bounds the topics listed as skipped in one answer (the
	// count says how many there were).
	maxSkipped = 100
	// previewBytes bounds a payload's preview in a listing.
	previewBytes = 160
)

// admin serves /api/admin/*.
type admin struct {
	hub    *bridge.Hub
	broker Broker // nil with an upstream broker
	authz  *auth.Authorizer
	log    *slog.Logger
	refuser
}

func (a *admin) routes(r chi.Router) {
	r.Route("/api/admin", func(r chi.Router) {
		r.Use(a.requireAdmin)
		r.Get("/mqtt-clients", a.mqttClients)
		r.Post("/mqtt-clients/disconnect", a.disconnectMQTTClient)
		r.Get("/sessions", a.sessions)
		r.Post("/sessions/disconnect", a.disconnectSession)
		r.Get("/retained", a.retained)
		r.Post("/retained/clear", a.clearRetained)
		r.Post("/retained/restore", a.restoreRetained)
	})
}

// requireAdmin answers 403 to everyone who is not an admin, whatever the
// route below /api/admin.
func (a *admin) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if who := auth.IdentityFrom(r.Context()); !a.authz.Admin(who) {
			a.refuse(w, r, http.StatusForbidden, bridge.CodeForbidden,
				fmt.Sprintf("%s is not an admin: the admin view needs the admin flag in the users file, or read access to all of $SYS/#", who), string(who))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// needBroker answers "unsupported" when the hub has no embedded broker.
func (a *admin) needBroker(w http.ResponseWriter) bool {
	if a.broker == nil {
		httpx.WriteError(w, http.StatusNotImplemented, bridge.CodeUnsupported,
			"the hub uses an upstream broker: its MQTT clients and retained messages are managed there")
		return false
	}
	return true
}

// page reads ?offset= and ?limit= (default 100, at most 1000).
func page(w http.ResponseWriter, r *http.Request) (offset, limit int, ok bool) {
	q := r.URL.Query()
	offset, limit = 0, defaultPage
	for _, p := range []struct {
		name string
		v    *int
		min  int
	}{{"offset", &offset, 0}, {"limit", &limit, 1}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < p.min {
			httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadRequest,
				fmt.Sprintf("?%s= must be a whole number of at least %d", p.name, p.min))
			return 0, 0, false
		}
		*p.v = n
	}
	return offset, min(limit, maxPage), true
}

// listing is one page of a list: "truncated" when more follow it.
type listing struct {
	Total     int  `json:"total"`
	Offset    int  `json:"offset"`
	Truncated bool `json:"truncated"`
}

// mqttClients: GET /api/admin/mqtt-clients?offset=&limit= — the connected
// MQTT clients, in the order they connected.
func (a *admin) mqttClients(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := page(w, r)
	if !ok || !a.needBroker(w) {
		return
	}
	clients, total := a.broker.Clients(offset, limit)
	writeJSON(w, http.StatusOK, struct {
		listing
		Clients []bridge.MQTTClient `json:"clients"`
	}{listing{total, offset, offset+len(clients) < total}, clients})
}

// disconnectMQTTClient: POST /api/admin/mqtt-clients/disconnect with
// {"id": "..."} — see broker.Embedded.DisconnectClient.
func (a *admin) disconnectMQTTClient(w http.ResponseWriter, r *http.Request) {
	if !a.needBroker(w) {
		return
	}
	id, ok := a.readID(w, r)
	if !ok {
		return
	}
	c, found := a.broker.DisconnectClient(id)
	if !found {
		httpx.WriteError(w, http.StatusNotFound, bridge.CodeNotFound, fmt.Sprintf("no MQTT client %q is connected", id))
		return
	}
	a.log.Info("admin disconnected an MQTT client", "user", string(auth.IdentityFrom(r.Context())),
		"client", c.ID, "client_user", c.User, "remote", c.Remote, "transport", c.Transport)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "client": c})
}

// sessions: GET /api/admin/sessions?offset=&limit= — the browser sessions
// (WebSocket and SSE), oldest first.
func (a *admin) sessions(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := page(w, r)
	if !ok {
		return
	}
	sessions, total := a.hub.Sessions(offset, limit)
	writeJSON(w, http.StatusOK, struct {
		listing
		Sessions []bridge.SessionInfo `json:"sessions"`
	}{listing{total, offset, offset+len(sessions) < total}, sessions})
}

// disconnectSession: POST /api/admin/sessions/disconnect with {"id": "..."}
// — the session ends with close code 4001 "disconnected by an admin".
func (a *admin) disconnectSession(w http.ResponseWriter, r *http.Request) {
	id, ok := a.readID(w, r)
	if !ok {
		return
	}
	s, found := a.hub.DisconnectSession(id)
	if !found {
		httpx.WriteError(w, http.StatusNotFound, bridge.CodeNotFound, fmt.Sprintf("no browser session %q is open", id))
		return
	}
	a.log.Info("admin disconnected a browser session", "user", string(auth.IdentityFrom(r.Context())),
		"session", s.ID, "session_user", s.User, "remote", s.Remote, "transport", s.Transport)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "session": s})
}

// readID reads a body {"id": "..."}.
func (a *admin) readID(w http.ResponseWriter, r *http.Request) (string, bool) {
	var req struct {
		ID string `json:"id"`
	}
	if !readJSON(w, r, 4<<10, `{"id": "..."}`, &req) {
		return "", false
	}
	if req.ID == "" {
		httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadRequest, `the body must name the id: {"id": "..."}`)
		return "", false
	}
	return req.ID, true
}

// retainedItem is a retained message in a listing.
type retainedItem struct {
	Topic   string     `json:"topic"`
	QoS     byte       `json:"qos"`
	Size    int        `json:"size"`              // the payload's bytes
	Created *time.Time `json:"created,omitempty"` // when the broker took it
	Origin  string     `json:"origin,omitempty"`  // the client that published it
	// Preview is the payload's start as text (at most 160 bytes, "…" when
	// cut); Binary says the payload is not UTF-8 (no preview).
	Preview string `json:"preview,omitempty"`
	Binary  bool   `json:"binary,omitempty"`
	// Payload is the whole payload (base64 in JSON): in a clear's answer,
	// for an undo.
	Payload []byte `json:"payload,omitempty"`
}

func itemOf(m bridge.RetainedMessage) retainedItem {
	it := retainedItem{Topic: m.Topic, QoS: m.QoS, Size: len(m.Payload), Origin: m.Origin}
	if !m.Created.IsZero() {
		it.Created = &m.Created
	}
	if utf8.Valid(m.Payload) {
		it.Preview = preview(m.Payload)
	} else {
		it.Binary = true
	}
	return it
}

// preview is the start of a UTF-8 payload, cut at a character boundary.
func preview(p []byte) string {
	if len(p) <= previewBytes {
		return string(p)
	}
	cut := previewBytes
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return string(p[:cut]) + "…"
}

// readable returns the retained messages matching filter that who may read.
func (a *admin) readable(w http.ResponseWriter, who auth.Identity, filter string) ([]bridge.RetainedMessage, bool) {
	if filter == "" {
		httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadRequest, "a filter is required (# for every topic)")
		return nil, false
	}
	all, err := a.broker.Retained(filter)
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadTopic, err.Error())
		return nil, false
	}
	kept := all[:0]
	for _, m := range all {
		if a.authz.Allowed(who, auth.Read, m.Topic) {
			kept = append(kept, m)
		}
	}
	return kept, true
}

// retained: GET /api/admin/retained?filter=&offset=&limit= — the retained
// messages matching filter that the admin may read, by topic: how many,
// their bytes, and one page of them.
func (a *admin) retained(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := page(w, r)
	if !ok || !a.needBroker(w) {
		return
	}
	filter := r.URL.Query().Get("filter")
	msgs, ok := a.readable(w, auth.IdentityFrom(r.Context()), filter)
	if !ok {
		return
	}
	bytes := 0
	for _, m := range msgs {
		bytes += len(m.Payload)
	}
	offset = min(offset, len(msgs))
	items := make([]retainedItem, 0, min(limit, len(msgs)-offset))
	for _, m := range msgs[offset:min(offset+limit, len(msgs))] {
		items = append(items, itemOf(m))
	}
	writeJSON(w, http.StatusOK, struct {
		Filter string `json:"filter"`
		listing
		Bytes    int            `json:"bytes"`
		Messages []retainedItem `json:"messages"`
	}{filter, listing{len(msgs), offset, offset+len(items) < len(msgs)}, bytes, items})
}

// skipped is a retained message a clear or a restore left alone, and why.
type skipped struct {
	Topic   string `json:"topic"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// skips collects what a clear or a restore left alone: all counted, the
// first maxSkipped listed.
type skips struct {
	Skipped int       `json:"skipped_count"`
	Listed  []skipped `json:"skipped"`
}

func (s *skips) add(topic string, err error) {
	s.Skipped++
	if len(s.Listed) < maxSkipped {
		e := bridge.AsError(err)
		s.Listed = append(s.Listed, skipped{Topic: topic, Code: e.Code, Message: e.Message})
	}
}

// clearAnswer is the answer to a clear, dry run or not.
type clearAnswer struct {
	Filter string `json:"filter"`
	DryRun bool   `json:"dry_run"`
	// Count and Bytes are what was cleared (would be, in a dry run);
	// Messages lists each, with its payload when cleared (for an undo).
	Count    int            `json:"count"`
	Bytes    int            `json:"bytes"`
	Messages []retainedItem `json:"messages"`
	// Truncated: more matched than one clear takes (10,000 messages, 16
	// MiB); clear again for the rest.
	Truncated bool `json:"truncated"`
	skips
}

// clearRetained: POST /api/admin/retained/clear with {"filter": "...",
// "dry_run": true|false} — clears the retained messages matching filter
// (a topic name clears that one) that the admin may read and write: an
// empty retained message is published on each, which removes it from the
// broker, the store and the hub's last values. A dry run lists what would
// go and changes nothing.
func (a *admin) clearRetained(w http.ResponseWriter, r *http.Request) {
	if !a.needBroker(w) {
		return
	}
	var req struct {
		Filter string `json:"filter"`
		DryRun bool   `json:"dry_run"`
	}
	if !readJSON(w, r, 4<<10, `{"filter": "...", "dry_run": true}`, &req) {
		return
	}
	who := auth.IdentityFrom(r.Context())
	msgs, ok := a.readable(w, who, req.Filter)
	if !ok {
		return
	}
	ans := clearAnswer{Filter: req.Filter, DryRun: req.DryRun, Messages: []retainedItem{}, skips: skips{Listed: []skipped{}}}
	// A clear goes to its end even if the page leaves meanwhile: stopped
	// half-way, its answer (what an undo needs) would be lost with nothing
	// to tell what went. Each publish is bounded by the hub's PublishTimeout.
	ctx := context.WithoutCancel(r.Context())
	for _, m := range msgs {
		if ans.Count == maxClear || ans.Bytes+len(m.Payload) > maxClearBytes {
			ans.Truncated = true
			break
		}
		if err := a.clearOne(ctx, who, m, req.DryRun); err != nil {
			ans.add(m.Topic, err)
			continue
		}
		it := itemOf(m)
		if !req.DryRun {
			it.Payload = m.Payload
		}
		ans.Messages = append(ans.Messages, it)
		ans.Count++
		ans.Bytes += len(m.Payload)
	}
	msg, level := "admin cleared retained messages", slog.LevelInfo
	if req.DryRun {
		msg = "admin listed the retained messages a clear would remove"
	} else if ans.Skipped > 0 {
		level = slog.LevelWarn // some were left: the ACL, or the broker refused
	}
	a.log.Log(r.Context(), level, msg, "user", string(who), "filter", req.Filter, "count", ans.Count,
		"bytes", ans.Bytes, "skipped", ans.Skipped, "truncated", ans.Truncated)
	writeJSON(w, http.StatusOK, ans)
}

// clearOne clears m as who (or, in a dry run, checks that who may).
func (a *admin) clearOne(ctx context.Context, who auth.Identity, m bridge.RetainedMessage, dryRun bool) error {
	if dryRun {
		return a.hub.MayPublishRetained(who, m.Topic) // the clear's own checks: the ACL, no '$' topic
	}
	return a.hub.PublishRetained(ctx, who, m.Topic, nil, 0)
}

// restoreRetained: POST /api/admin/retained/restore with {"messages":
// [{"topic", "payload" (base64), "qos"}, ...]} — republishes each as a
// retained message from the admin (Write access to its topic, as any
// publish): how the page undoes a clear. At most 10,000 messages and 16 MiB
// of payloads.
func (a *admin) restoreRetained(w http.ResponseWriter, r *http.Request) {
	if !a.needBroker(w) {
		return
	}
	var req struct {
		Messages []struct {
			Topic   string `json:"topic"`
			Payload []byte `json:"payload"`
			QoS     byte   `json:"qos"`
		} `json:"messages"`
	}
	if !readJSON(w, r, maxRestoreBody, `{"messages": [{"topic": "...", "payload": "<base64>", "qos": 0}]}`, &req) {
		return
	}
	if len(req.Messages) > maxClear {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, bridge.CodeTooLarge,
			fmt.Sprintf("%d messages, at most %d in one restore", len(req.Messages), maxClear))
		return
	}
	who := auth.IdentityFrom(r.Context())
	var ans struct {
		Restored int `json:"restored"`
		Bytes    int `json:"bytes"`
		skips
	}
	ans.Listed = []skipped{}
	ctx := context.WithoutCancel(r.Context()) // as a clear: to its end, each publish bounded
	for _, m := range req.Messages {
		var err error
		switch {
		case len(m.Payload) == 0:
			err = &bridge.Error{Code: bridge.CodeBadRequest, Message: "an empty payload restores nothing", Topic: m.Topic}
		case ans.Bytes+len(m.Payload) > maxClearBytes:
			err = &bridge.Error{Code: bridge.CodeTooLarge, Message: fmt.Sprintf("past %d bytes in one restore", maxClearBytes), Topic: m.Topic}
		default:
			err = a.hub.PublishRetained(ctx, who, m.Topic, m.Payload, m.QoS)
		}
		if err != nil {
			ans.add(m.Topic, err)
			continue
		}
		ans.Restored++
		ans.Bytes += len(m.Payload)
	}
	level := slog.LevelInfo
	if ans.Skipped > 0 {
		level = slog.LevelWarn
	}
	a.log.Log(r.Context(), level, "admin restored retained messages", "user", string(who),
		"count", ans.Restored, "bytes", ans.Bytes, "skipped", ans.Skipped)
	writeJSON(w, http.StatusOK, ans)
}

// readJSON reads an application/json body of at most limit bytes into v,
// answering the errors itself (what says what the body should be).
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) bool {
	body, ok := readJSONBody(w, r, limit, what)
	if !ok {
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		msg := "the body must be " + what
		if errors.As(err, &te) {
			msg = fmt.Sprintf("%s: %q has the wrong type", msg, te.Field)
		}
		httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadJSON, msg)
		return false
	}
	return true
}
