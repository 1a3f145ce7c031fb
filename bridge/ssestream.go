package bridge

import (
	"bytes"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/motehub/motehub/internal/linger"
)

// sseStream is an SSE client whose HTTP/1.1 connection the hub took over
// from net/http (hijacked): net/http lets go of its buffers, the request
// and the handler's goroutine, and the stream is written like a
// WebSocket's, by the flushers and, when a write would wait, a writer of
// its own (flusher.go). The hub writes the response's head itself; the
// body ends with the connection. A reader goroutine, idle at a shallow
// stack, notices the client leaving.
type sseStream struct {
	hub *Hub
	c   *client
	net *streamConn // set before anyone but the handler owns c (see serveHijacked)
	// hijacked is net, for abort, which may come from another goroutine
	// at any time.
	hijacked atomic.Pointer[streamConn]
	// lingerUntil (unix nanos; 0 until close) is when a closing stream
	// stops waiting for the client to close too.
	lingerUntil atomic.Int64
}

var _ streamTransport = (*sseStream)(nil)

// sseKeepAlive is the comment an idle stream gets, so that proxies do not
// cut it.
var sseKeepAlive = []byte(": keep-alive\n\n")

func (s *sseStream) appendLines(dst []byte, events [][]byte) []byte {
	for _, ev := range events {
		dst = append(dst, ev...)
	}
	return dst
}

func (s *sseStream) appendHeader(dst []byte, _ int) []byte { return dst }
func (s *sseStream) keepAlive() []byte                     { return sseKeepAlive }
func (s *sseStream) stream() *streamConn                   { return s.net }

// close tells the client why the stream ends ("event: close"; EventSource
// then reconnects) unless it is gone or the stream is broken, and
// half-closes the connection: the reader lingers until the client closes
// too, so that no reset destroys the event on its way.
func (s *sseStream) close(r CloseReason, broken bool) {
	if !broken && r != ReasonClientGone {
		broken = s.net.writeAll(closeEventFrame(r, "")) != nil
	}
	if broken || r == ReasonClientGone {
		_ = s.net.Conn.Close() // ends the reader
		return
	}
	until := time.Now().Add(linger.Timeout)
	s.lingerUntil.Store(until.UnixNano())
	linger.CloseWrite(s.net.Conn)
	_ = s.net.Conn.SetReadDeadline(until) // the reader ends by then at the latest
}

// abort closes the connection at once, once there is one: for a shutdown
// that ran out of time.
func (s *sseStream) abort() {
	if conn := s.hijacked.Load(); conn != nil {
		_ = conn.Conn.Close()
	}
}

// run is the stream's reader: an EventSource sends nothing on its stream,
// so what comes is discarded, and the end of the connection ends the
// session.
func (s *sseStream) run() {
	var discard [64]byte
	for {
		s.net.waitReadable()
		if _, err := s.net.Conn.Read(discard[:]); err != nil {
			break
		}
	}
	s.end()
}

// end ends the session once its reader returned.
//
//go:noinline
func (s *sseStream) end() {
	h, c := s.hub, s.c
	c.close(ReasonClientGone)
	<-c.w.done // the close is written
	if until := s.lingerUntil.Load(); until != 0 {
		linger.Drain(s.net.Conn, time.Unix(0, until), linger.MaxBytes)
	}
	_ = s.net.Conn.Close()
	h.sessionClosed(c)
	h.detach(c) // last: Close waits for it
}

// canHijack reports whether the connection of w can be taken over from
// net/http: HTTP/1.x, through wrappers that say what they wrap.
func canHijack(w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	for {
		switch u := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = u.Unwrap()
		default:
			return false
		}
	}
}

// eventStreamHead is the head of an event stream's response that the hub
// writes itself on a hijacked connection: the status, hdr (what the
// handlers before set, and the stream's own), and no length: the body
// ends with the connection.
func eventStreamHead(hdr http.Header, retry time.Duration) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	hdr = hdr.Clone()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx and others: do not buffer the stream
	hdr.Set("Connection", "close")
	hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	_ = hdr.Write(&b)
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "retry: %d\n\n", retry.Milliseconds())
	return b.Bytes()
}
