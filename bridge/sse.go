package bridge

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/topics"
)

// StreamQuery is what a client asks of a stream (SSE) or a long poll.
type StreamQuery struct {
	Filters []string // relative to the base; default ["#"]
	Since   string   // the last event id the client has; "" for none
}

// maxQueryFilters bounds the filters one request may name.
const maxQueryFilters = 256

// ParseStreamQuery reads ?filter= (repeatable) and the client's last event
// id: the Last-Event-ID header that EventSource sends when it reconnects,
// else ?lastEventId= (for clients that cannot set headers), else ?since=.
// Errors are *Error.
func ParseStreamQuery(q url.Values, header http.Header) (StreamQuery, error) {
	sq := StreamQuery{Filters: q["filter"]}
	if len(sq.Filters) == 0 {
		sq.Filters = []string{"#"}
	}
	if len(sq.Filters) > maxQueryFilters {
		return sq, errorf(CodeLimit, "%d filters, at most %d", len(sq.Filters), maxQueryFilters)
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
	return sq, nil
}

// ServeEvents streams the messages under base as Server-Sent Events
// (text/event-stream): "retry:" first, then each message as "id:" and
// "data: [topic, payload]", a comment every Config.KeepAlive. A client that
// sends its last event id resumes after it without a gap or a duplicate,
// or gets "event: resync" and the last values when that is not possible.
func (h *Hub) ServeEvents(w http.ResponseWriter, r *http.Request, base string) {
	q, err := ParseStreamQuery(r.URL.Query(), r.Header)
	if err == nil {
		err = h.checkQuery(base, q.Filters)
	}
	if err != nil {
		e := AsError(err)
		httpx.WriteError(w, HTTPStatus(e.Code), e.Code, e.Message)
		return
	}
	rc := http.NewResponseController(w)
	c := newClient(newID(8), "sse", base, r.RemoteAddr, auth.IdentityFrom(r.Context()), formatSSE, &h.cfg)
	c.abort = func() { _ = rc.SetWriteDeadline(time.Now()) } // a write in progress fails at once
	if err := h.attach(c); err != nil {
		e := AsError(err)
		httpx.WriteError(w, HTTPStatus(e.Code), e.Code, e.Message)
		return
	}
	defer h.detach(c)

	// Registered before the first byte goes out: a client that has the
	// response gets everything published after it.
	h.follow(r.Context(), base, h.readableFilters(c.who, base, q.Filters), interestWait)
	if err := h.startStream(c, q); err != nil {
		e := AsError(err)
		httpx.WriteError(w, HTTPStatus(e.Code), e.Code, e.Message)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx and others: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sseSession{hub: h, c: c, w: w, rc: rc}
	if err := s.write([][]byte{fmt.Appendf(nil, "retry: %d\n\n", h.cfg.SSERetry.Milliseconds())}); err != nil {
		return
	}
	h.log.Info("session opened", "session", c.id, "transport", c.transport, "remote", c.remote, "base", base, "since", q.Since)
	s.run(r)
	h.log.Info("session closed", "session", c.id, "transport", c.transport, "remote", c.remote,
		"reason", c.reason.Text, "duration", time.Since(c.opened).Round(time.Millisecond))
}

// startStream begins an SSE client: after the event it has, or from now
// with the current id as its first event, so that even a client that has
// received nothing yet can resume.
func (h *Hub) startStream(c *client, q StreamQuery) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	after, resync := h.seq, ""
	if q.Since != "" {
		after, resync = h.resolveLocked(q.Since, c.base, q.Filters)
	}
	cu, err := h.beginLocked(c, q.Filters, after, resync)
	if err != nil {
		return err
	}
	if q.Since == "" {
		cu.frames = [][]byte{[]byte("id: " + h.startID(cu) + "\n\n")}
	}
	c.out.restart(cu)
	return nil
}

type sseSession struct {
	hub *Hub
	c   *client
	w   http.ResponseWriter
	rc  *http.ResponseController
}

func (s *sseSession) run(r *http.Request) {
	h, c := s.hub, s.c
	keepAlive := time.NewTicker(h.cfg.KeepAlive)
	defer keepAlive.Stop()
	var drained drainer
	for {
		var err error
		select {
		case <-c.out.ready:
			err = h.drain(c, &drained, s.write)
		case <-keepAlive.C:
			drained.idle(&c.out)
			err = s.write([][]byte{[]byte(": keep-alive\n\n")})
		case <-c.stop:
			// EventSource reconnects when a stream ends; the reason is for people and logs.
			if c.reason != ReasonClientGone {
				_ = s.write([][]byte{fmt.Appendf(nil, "event: close\ndata: {\"reason\":%q}\n\n", c.reason.Text)})
			}
			return
		case <-r.Context().Done():
			c.close(ReasonClientGone)
			return
		}
		if err != nil {
			c.close(ReasonWriteFailed)
			return
		}
	}
}

// write sends frames and flushes them, within Config.WriteTimeout.
func (s *sseSession) write(frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.hub.cfg.WriteTimeout))
	for _, f := range frames {
		if _, err := s.w.Write(f); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}
