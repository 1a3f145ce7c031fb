package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/linger"
	"github.com/motehub/motehub/internal/refusals"
	"github.com/motehub/motehub/topics"
)

// StreamQuery is what a client asks of a stream (SSE) or a long poll.
type StreamQuery struct {
	Filters []string // relative to the base; default ["#"]
	Since   string   // the last event id the client has; "" for none
	// Overflow is ?overflow=: OverflowClose ("" too) or OverflowLatest (latest.go).
	Overflow string
	// Devices is ?devices=1 (or true) on an event stream: "event: device"
	// each time a device of the model the client may read changes
	// (devview.go), as config/set's "devices" does on a WebSocket.
	Devices bool
}

// ParseStreamQuery reads ?filter= (repeatable) and the client's last event
// id: the Last-Event-ID header that EventSource sends when it reconnects,
// else ?lastEventId= (for clients that cannot set headers), else ?since=.
// How many filters a request may name is the Hub's to say (checkQuery).
// Errors are *Error.
func ParseStreamQuery(q url.Values, header http.Header) (StreamQuery, error) {
	sq := StreamQuery{Filters: q["filter"]}
	if len(sq.Filters) == 0 {
		sq.Filters = []string{"#"}
	}
	for _, f := range sq.Filters {
		if err := topics.ValidateFilter(f); err != nil {
			return sq, &Error{Code: CodeBadTopic, Message: fmt.Sprintf("invalid filter %q: %v", f, err), Topic: f}
		}
	}
	for _, s := range []string{header.Get("Last-Event-ID"), q.Get("lastEventId"), q.Get("since")} {
		if s != "" {
			sq.Since = s
			break
		}
	}
	if len(sq.Since) > 128 {
		return sq, errorf(CodeBadRequest, "the last event id is longer than 128 bytes")
	}
	sq.Overflow = q.Get("overflow")
	if err := checkOverflow(sq.Overflow); err != nil {
		return sq, err
	}
	switch d := q.Get("devices"); d {
	case "", "0", "false":
	case "1", "true":
		sq.Devices = true
	default:
		return sq, errorf(CodeBadRequest, "devices=%q: want 1 or 0", d)
	}
	return sq, nil
}

// ServeEvents streams the messages under base as Server-Sent Events
// (text/event-stream): "retry:" first, then each message as "id:" and
// "data: [topic, payload]", a comment every Config.KeepAlive; with
// ?devices=1 also "event: device" and a device, as the WebSocket's
// device frames. A client that
// sends its last event id resumes after it without a gap or a duplicate,
// or gets "event: resync" and the last values when that is not possible.
//
// Over HTTP/1.1 the hub takes the connection over from net/http once the
// stream starts (its head written by the hub, the body ended by closing
// the connection) and ServeEvents returns; over HTTP/2 it returns when the
// stream ends.
func (h *Hub) ServeEvents(w http.ResponseWriter, r *http.Request, base string) {
	q, err := ParseStreamQuery(r.URL.Query(), r.Header)
	if err == nil {
		err = h.checkQuery(base, q.Filters)
	}
	if err != nil {
		h.answer(w, r, refusals.SSE, AsError(err))
		return
	}
	rc := http.NewResponseController(w)
	c := newClient(newID(8), "sse", base, r.RemoteAddr, auth.IdentityFrom(r.Context()), formatSSE, &h.cfg)
	var hijacked *sseStream
	var ready chan struct{}
	if canHijack(w, r) {
		hijacked = &sseStream{hub: h, c: c}
		h.prepareScheduled(c, hijacked)
		c.w.owner.Store(writeOwned) // the handler's, until the response's head is written
		c.abort = hijacked.abort
	} else {
		c.abort = func() { _ = rc.SetWriteDeadline(time.Now()) } // a write in progress fails at once
		ready = make(chan struct{}, 1)
		c.out.notify = readySignal(ready)
	}
	if err := h.sess.attach(c); err != nil {
		e := AsError(err)
		h.reportRefusal(r, refusals.SSE, e)
		if acceptsEventStream(r) {
			h.refuseStream(w, rc, e)
			return
		}
		httpx.WriteError(w, HTTPStatus(e.Code), e.Code, e.Message)
		return
	}

	// Registered before the first byte goes out: a client that has the
	// response gets everything published after it.
	h.interest.follow(r.Context(), base, h.readableFilters(c.who, base, q.Filters), interestWait)
	if err := h.fan.startStream(c, q); err != nil {
		h.detach(c)
		h.answer(w, r, refusals.SSE, AsError(err)) // filters the user may not read: 403
		return
	}
	h.views.follow(c, q.Devices) // detach unfollows
	if hijacked != nil {
		h.serveHijacked(w, hijacked, q.Since)
		return
	}
	defer h.detach(c)
	startEventStream(w)
	s := &sseSession{hub: h, c: c, w: w, rc: rc}
	if err := s.WriteMany([][]byte{fmt.Appendf(nil, "retry: %d\n\n", h.cfg.SSERetry.Milliseconds())}); err != nil {
		return
	}
	if err := s.Flush(); err != nil {
		return
	}
	h.log.Info("session opened", "session", c.id, "transport", c.transport, "remote", c.remote, "base", base, "since", q.Since)
	h.writeLoop(c, s, writerTimers{keepAlive: h.cfg.KeepAlive, gone: r.Context().Done(), ready: ready})
	h.sessionClosed(c)
}

// serveHijacked takes s's connection over from net/http, writes the
// response's head, and hands the stream, whose catchup is queued, to the
// flushers; the handler then returns. The handler owns s.c until then.
func (h *Hub) serveHijacked(w http.ResponseWriter, s *sseStream, since string) {
	c := s.c
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		c.close(ReasonWriteFailed)
		c.finish()
		h.detach(c)
		h.log.Error("event stream not taken over", "remote", c.remote, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, CodeInternal, "the event stream could not start")
		return
	}
	_ = nc.SetDeadline(time.Time{}) // the server's deadlines are not the stream's
	// "event: close" for a client that reads slowly waits behind what the
	// kernel holds unsent: keep that small.
	linger.BoundUnsent(nc, unsentBound)
	s.net = newStreamConn(nc)
	s.hijacked.Store(s.net)
	h.watch.add(c, h.cfg.KeepAlive, 0)
	h.log.Info("session opened", "session", c.id, "transport", c.transport, "remote", c.remote, "base", c.base, "since", since)
	if err := s.net.writeAll(eventStreamHead(w.Header(), h.cfg.SSERetry)); err != nil {
		c.close(ReasonWriteFailed)
	}
	if c.release() { // the catchup is queued: the flushers take it from here
		c.w.shard.add(c)
	}
	go s.run()
}

// startEventStream answers 200 with the headers of an event stream.
func startEventStream(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx and others: do not buffer the stream
	w.WriteHeader(http.StatusOK)
}

// acceptsEventStream reports whether r asks for an event stream, as
// EventSource does (Accept: text/event-stream).
func acceptsEventStream(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Accept")), "text/event-stream")
}

// closeEvent is the data of an "event: close": why the hub ends a stream
// (reason and code as in a WebSocket close frame), and, when it refuses
// one, the details.
type closeEvent struct {
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
	Message string `json:"message,omitempty"`
}

func closeEventFrame(r CloseReason, message string) []byte {
	data, _ := json.Marshal(closeEvent{Reason: r.Text, Code: r.Code, Message: message})
	return fmt.Appendf(nil, "event: close\ndata: %s\n\n", data)
}

// refuseStream answers an EventSource that a session limit refuses: a 429
// or a 503 would make it give up for good (WHATWG HTML, "fail the
// connection"), so it gets a short stream instead, with a long retry: and
// the reason, and comes back by itself. It sends no id, so the page
// resumes where it was.
func (h *Hub) refuseStream(w http.ResponseWriter, rc *http.ResponseController, e *Error) {
	startEventStream(w)
	_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	_, _ = fmt.Fprintf(w, "retry: %d\n\n", h.cfg.SSERefusedRetry.Milliseconds())
	_, _ = w.Write(closeEventFrame(ReasonRefused, e.Code+": "+e.Message))
	_ = rc.Flush()
}

// sseSession is an SSE client whose connection net/http keeps (HTTP/2):
// its writer runs on the request's goroutine. Over HTTP/1.1 the hub takes
// the connection over instead (sseStream).
type sseSession struct {
	hub *Hub
	c   *client
	w   http.ResponseWriter
	rc  *http.ResponseController
	// closing: Close is writing the close event; until then a write stops
	// (errStopping) as soon as the session is ending.
	closing bool
}

var _ clientTransport = (*sseSession)(nil)

// WriteMany writes events into the response's buffer, within
// Config.WriteTimeout.
func (s *sseSession) WriteMany(frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.hub.cfg.WriteTimeout))
	for _, f := range frames {
		if !s.closing && s.c.stopped() {
			return errStopping
		}
		if _, err := s.w.Write(f); err != nil {
			return err
		}
	}
	return nil
}

// Flush sends what WriteMany wrote, within Config.WriteTimeout.
func (s *sseSession) Flush() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.hub.cfg.WriteTimeout))
	return s.rc.Flush()
}

// KeepAlive sends a comment, so that proxies do not cut an idle stream.
func (s *sseSession) KeepAlive() error {
	if err := s.WriteMany([][]byte{[]byte(": keep-alive\n\n")}); err != nil {
		return err
	}
	return s.Flush()
}

// Close tells the client why the stream ends; EventSource then
// reconnects, and the reason is for people and logs. The writer stopped
// adding to the stream as soon as the session was ending, so for a client
// that reads slowly this waits only behind what the socket already holds.
// When the handler returns, net/http ends the response and keeps the
// connection for a next request: an EventSource sends nothing on it, so no
// unread input turns a close into a reset that would lose the event.
func (s *sseSession) Close(r CloseReason, broken bool) {
	s.closing = true
	if !broken && r != ReasonClientGone {
		if s.WriteMany([][]byte{closeEventFrame(r, "")}) == nil {
			_ = s.Flush()
		}
	}
}
