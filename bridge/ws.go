package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/linger"
	"github.com/motehub/motehub/internal/refusals"
	"github.com/motehub/motehub/topics"
)

// Subprotocol is the WebSocket subprotocol of Clown.Talk. It is selected when
// the client offers it; a client that offers none is served all the same.
const Subprotocol = "clown.talk"

// closeGrace bounds the writing of the close frame that refuses a session
// right after its handshake.
const closeGrace = time.Second

// unsentBound is the most a stream's kernel holds unsent (WebSocket, hijacked
// SSE): four of a writer's gathered writes, so throughput does not suffer,
// and little enough that a slow reader reaches the close frame soon after
// it is written.
const unsentBound = 128 << 10

// wsVersion is the only WebSocket protocol version there is (RFC 6455).
const wsVersion = "13"

func newUpgrader(h *Hub) websocket.Upgrader {
	return websocket.Upgrader{
		ReadBufferSize:  0, // gorilla reads through the session's buffer (hijackingWriter)
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{}, // idle sessions hold no write buffer
		Subprotocols:    []string{Subprotocol},
		CheckOrigin:     h.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			w.Header().Set("Sec-WebSocket-Version", wsVersion) // as gorilla does without this function
			if status == http.StatusForbidden {                // the only refusal gorilla makes: CheckOrigin's
				h.refuse(w, r, refusals.WebSocket, errorf(CodeForbidden,
					"pages from %s may not use this hub (see --allow-origin)", r.Header.Get("Origin")))
				return
			}
			httpx.WriteError(w, status, CodeBadRequest, reason.Error())
		},
	}
}

// checkOrigin lets a WebSocket handshake through when it comes from no
// browser (no Origin header), from the hub's own origin, or from an origin in
// Config.AllowedOrigins.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || OriginAllowed(origin, r, h.cfg.AllowedOrigins)
}

// OriginAllowed reports whether a page from origin may use the hub that r
// reached: the hub's own origin (the same scheme, see [RequestScheme], and
// the same host and port as r.Host), or one listed in allowed, exactly,
// scheme included ("*" lists every origin). A page served over https is not
// the origin of a plain-HTTP hub on the same host and port, nor the reverse.
func OriginAllowed(origin string, r *http.Request, allowed []string) bool {
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Scheme, RequestScheme(r)) && strings.EqualFold(u.Host, r.Host)
}

type forwardedSchemeKey struct{}

// WithForwardedScheme records in ctx the scheme ("http" or "https") a
// trusted reverse proxy says the client used (X-Forwarded-Proto); only the
// HTTP layer, which knows which proxies to trust, calls it.
func WithForwardedScheme(ctx context.Context, scheme string) context.Context {
	return context.WithValue(ctx, forwardedSchemeKey{}, scheme)
}

// RequestScheme is the scheme the client used to reach the hub: the one a
// trusted proxy reported (see [WithForwardedScheme]), else "https" when r
// came over TLS, else "http".
func RequestScheme(r *http.Request) string {
	if s, ok := r.Context().Value(forwardedSchemeKey{}).(string); ok {
		return s
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// ServeWebSocket upgrades r to a Clown.Talk session mounted on base, the MQTT
// subtree the client sees with topics relative to it ("" is the root). What
// goes wrong before the upgrade is answered as a JSON HTTP error.
func (h *Hub) ServeWebSocket(w http.ResponseWriter, r *http.Request, base string) {
	if err := topics.ValidateBase(base); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, CodeBadTopic, fmt.Sprintf("invalid base topic %q: %v", base, err))
		return
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); websocket.IsWebSocketUpgrade(r) && !headerHasToken(r.Header, "Sec-WebSocket-Version", wsVersion) {
		// RFC 6455 §4.2.2: 426 and the version the server speaks.
		w.Header().Set("Sec-WebSocket-Version", wsVersion)
		httpx.WriteError(w, http.StatusUpgradeRequired, CodeUnsupported,
			fmt.Sprintf("WebSocket version %q is not supported: this hub speaks version %s", v, wsVersion))
		return
	}
	addr := httpx.Host(r.RemoteAddr)
	if err := h.sess.reserve(addr); err != nil {
		h.refuse(w, r, refusals.WebSocket, AsError(err))
		return
	}
	// Taken before the handshake completes: a session replays from here, so a
	// client gets everything published after it saw the 101 response.
	connectSeq := h.fan.position()
	cw := &hijackingWriter{ResponseWriter: w}
	conn, err := h.upgrader.Upgrade(cw, r, nil)
	if err != nil {
		h.sess.unreserve(addr)
		h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return // the upgrader has answered
	}
	// A close frame for a client that reads slowly waits behind what the
	// kernel holds unsent: keep that small (see Close).
	linger.BoundUnsent(cw.conn.Conn, unsentBound)
	c := newClient(newID(8), "ws", base, r.RemoteAddr, auth.IdentityFrom(r.Context()), formatLines, &h.cfg)
	c.connectSeq = connectSeq
	s := &wsSession{hub: h, c: c, conn: conn, net: cw.conn, br: cw.br, limit: newInboundLimit(h.cfg.MessageRate)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	c.abort = func() {
		_ = conn.NetConn().Close()
		h.readers.wake(s) // a parked reader sees the end
	}
	conn.SetReadLimit(int64(h.cfg.MaxFrameBytes))
	// The watchdog closes a session not heard from in PongWait: no read
	// deadline per frame.
	conn.SetPongHandler(func(string) error { c.w.heard.Store(time.Now().UnixNano()); return nil })
	h.prepareScheduled(c, s)
	if err := h.sess.attachReserved(c); err != nil { // shutting down
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseTryAgainLater, closeText(AsError(err).Message)), time.Now().Add(closeGrace))
		_ = linger.Close(cw.conn.Conn, linger.Timeout)
		return
	}
	h.log.Info("session opened", "session", c.id, "transport", c.transport, "remote", c.remote,
		"base", c.base, "subprotocol", conn.Subprotocol())
	// A client that has not sent config/set by HelloTimeout starts with the defaults.
	h.watch.add(c, pingPeriod(h.cfg.PongWait), h.cfg.HelloTimeout)
	// The handler returns: net/http lets go of the connection's buffers, the
	// request and the handler's deep stack, about half of what an idle
	// session would otherwise hold. The session belongs to the hub from
	// here (attach above; Close waits for it); idle, it holds no goroutine
	// (idlereaders.go).
	if !h.readers.park(s) {
		go s.run()
	}
}

// wsSession is one WebSocket client: the reader runs on a goroutine of its
// own, started by ServeWebSocket; its stream is written by the flushers
// and, when a write would wait, a writer of its own (see flusher.go).
type wsSession struct {
	hub    *Hub
	c      *client
	conn   *websocket.Conn
	net    *streamConn     // conn's connection, where the stream goes
	br     *bufio.Reader   // what gorilla reads through; the reader's own
	ctx    context.Context // for the client's publishes; cancelled when the session stops
	cancel context.CancelFunc
	limit  inboundLimit
	// lingerUntil (unix nanos; 0 until Close) is when a closing session
	// stops waiting for the client to close too.
	lingerUntil atomic.Int64
	// parkToken is the session's token while its reader is parked
	// (idlereaders.go); guarded by the idle readers' lock.
	parkToken uint64
}

var _ streamTransport = (*wsSession)(nil)

// How a session ends (a lingering close, see package linger): the writer
// closes the transport (close): a close frame with the reason (the
// client's own close is answered by gorilla's reader), then a half-close,
// so that the client reads everything up to the close frame and then the
// end of the stream. The reader, which stops acting on what the client
// sends, ends with the client's close frame or at the linger deadline; run
// then drains what the client still sends until it closes too, or the
// deadline, and only then closes the socket: a socket closed with unread
// input sends a reset, which would destroy the close frame on its way.
//
// run is the session's reader, on a goroutine of its own while there is
// something to read: idle, the session is parked (idlereaders.go) and run
// returns, to start again when the client sends something or the session
// must end. Where it cannot park, it waits on its goroutine at a shallow
// stack (see readLoop): what goes deep (logs, the end) is in functions of
// their own.
func (s *wsSession) run() { s.read(true) }

// resume is run for a parked session that has input, or is ending: it
// reads at once, through a new read buffer (a parked session keeps none).
func (s *wsSession) resume() {
	*s.br = *bufio.NewReaderSize(s.net, wsReadBuffer)
	s.read(false)
}

func (s *wsSession) read(wait bool) {
	if err := s.readLoop(wait); err != errParked {
		s.end(err)
	}
}

// errParked says the reader parked: the session goes on without it.
var errParked = errors.New("parked")

// end ends the session, after its reader returned err.
//
//go:noinline
func (s *wsSession) end(err error) {
	h, c := s.hub, s.c
	c.close(readReason(err))
	<-c.w.done // the close is written
	if until := s.lingerUntil.Load(); until != 0 {
		linger.Drain(s.net.Conn, time.Unix(0, until), linger.MaxBytes)
	}
	_ = s.conn.Close()
	h.sessionClosed(c)
	h.detach(c) // last: Close waits for it
}

func readReason(err error) CloseReason {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return ReasonTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return ReasonIdle
	}
	return ReasonClientGone
}

// readLoop reads until the session ends or parks; wait: look for input
// first (else there is some, or the session is ending).
func (s *wsSession) readLoop(wait bool) error {
	c := s.c
	var buf []byte
	for ; ; wait = true {
		if wait && (s.br == nil || s.br.Buffered() == 0) {
			if s.hub.readers.park(s) {
				return errParked // everything read: the client's next frame resumes it
			}
			// An idle session that cannot park waits here, its stack
			// shallow (see streamConn.waitReadable).
			s.net.waitReadable()
		}
		if s.skipPong() {
			continue
		}
		var err error
		if buf, err = s.readAside(buf); err != nil || c.stopped() {
			return err // nil: closing (what the client sends now is drained unread), flooding, or the hub ended the session
		}
	}
}

// skipPong reads a pong frame that comes next, and reports whether it did:
// gorilla, after a pong, would go on waiting for a message deep in
// NextReader, and the session could not park. A pong is all an idle
// browser sends (answering the watchdog's pings). Only a well-formed one is
// taken (final, unfragmented, masked, at most 125 bytes); anything else is
// left to gorilla. It reads only where the socket said it has input.
func (s *wsSession) skipPong() bool {
	const (
		finalPong = 0x80 | websocket.PongMessage // FIN, no RSV bits, opcode 10
		masked    = 0x80
		maxLen    = 125 // a control frame's payload
	)
	if s.net.raw == nil || s.br == nil {
		return false
	}
	head, err := s.br.Peek(2)
	if err != nil || head[0] != finalPong || head[1]&masked == 0 || int(head[1]&^masked) > maxLen {
		return false
	}
	size := 2 + 4 + int(head[1]&^masked) // header, mask, payload
	if _, err := s.br.Peek(size); err != nil {
		return false // gorilla reads it, and its error
	}
	_, _ = s.br.Discard(size)
	s.c.w.heard.Store(time.Now().UnixNano())
	return true
}

// readAside runs readOne on a goroutine of its own and waits for it: the
// depth that reading a message and acting on it takes (gorilla, JSON, a
// config/set) is that goroutine's stack, which ends with it, and not the
// reader's, which an idle session keeps until a garbage collection shrinks
// it. A message costs a goroutine's start (browsers send few; MessageRate
// bounds them).
func (s *wsSession) readAside(buf []byte) ([]byte, error) {
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		buf, err = s.readOne(buf)
	}()
	<-done
	return buf, err
}

// readOne reads a message from the client and acts on it, reusing buf.
//
//go:noinline
func (s *wsSession) readOne(buf []byte) ([]byte, error) {
	h, c := s.hub, s.c
	kind, r, err := s.conn.NextReader()
	if err != nil || c.stopped() {
		return buf, err
	}
	c.w.heard.Store(time.Now().UnixNano())
	var tooLarge bool
	buf, tooLarge, err = readMessage(buf[:0], r, h.cfg.MaxMessageBytes)
	if err != nil {
		return buf, err
	}
	if tooLarge {
		h.fan.send(c, controlFrame(topicError, errorf(CodeTooLarge,
			"message over %d bytes discarded", h.cfg.MaxMessageBytes)))
		return buf, nil
	}
	// RFC 6455 §8.1: a text frame is UTF-8, or the connection fails.
	// A binary frame carries the same lines; its bytes are checked line
	// by line (a line that is not UTF-8 is answered "bad-json").
	if kind == websocket.TextMessage && !utf8.Valid(buf) {
		c.close(ReasonInvalidText)
		return buf, nil
	}
	splitLines(buf, func(line []byte) {
		if s.limit.admit(h, c) {
			h.handleLine(s.ctx, c, line)
		}
	})
	if cap(buf) > 16<<10 {
		buf = nil // an idle session keeps no large buffer
	}
	return buf, nil
}

// inboundLimit holds a client to Config.MessageRate.
type inboundLimit struct {
	lim         *rate.Limiter // nil: no limit
	window      time.Time     // the current second
	dropped     int           // messages dropped in it
	floodAt     int           // drops in a second that close the session
	warnedUntil time.Time
}

func newInboundLimit(perSecond float64) inboundLimit {
	if perSecond < 0 {
		return inboundLimit{}
	}
	burst := int(2*perSecond) + 1
	return inboundLimit{lim: rate.NewLimiter(rate.Limit(perSecond), burst), floodAt: max(10*burst, 1000)}
}

// admit reports whether a message may be handled. A message past the rate is
// dropped and answered with a "rate-limited" error at most once a second; a
// client that sends many times the rate is closed.
func (l *inboundLimit) admit(h *Hub, c *client) bool {
	if l.lim == nil || l.lim.Allow() {
		return true
	}
	h.stats.limited.Add(1)
	now := time.Now()
	if now.Sub(l.window) >= time.Second {
		l.window, l.dropped = now, 0
	}
	if l.dropped++; l.dropped > l.floodAt {
		c.close(ReasonFlooding)
		return false
	}
	if now.After(l.warnedUntil) {
		l.warnedUntil = now.Add(time.Second)
		h.fan.send(c, controlFrame(topicError, errorf(CodeRateLimited,
			"over %g messages per second: messages are dropped", float64(l.lim.Limit()))))
	}
	return false
}

// readMessage reads one message into buf. A message over limit is read to
// its end and dropped, and reported as tooLarge.
func readMessage(buf []byte, r io.Reader, limit int) (_ []byte, tooLarge bool, err error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			_, err := io.Copy(io.Discard, r)
			return buf[:0], true, err
		}
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
}

func (s *wsSession) appendLines(dst []byte, lines [][]byte) []byte {
	return appendTextFrames(dst, lines, s.c.batch.Load(), s.hub.cfg.MaxBatchBytes)
}

func (s *wsSession) appendHeader(dst []byte, size int) []byte { return appendTextHeader(dst, size) }

// keepAlive pings: a client that answers (any reading client does) keeps
// its session past Config.PongWait.
func (s *wsSession) keepAlive() []byte { return pingFrame }

func (s *wsSession) stream() *streamConn { return s.net }

// close tells the client why the hub ends the session, unless it knows
// already or the stream is broken, and half-closes the connection; run
// lingers until the client closes too.
//
// The close frame gets a whole Config.WriteTimeout (the watchdog's): for a
// client that reads slowly it waits behind what the socket already holds
// (the writer stopped adding to it as soon as the session was ending, and
// the kernel holds at most unsentBound unsent), and its reader sees it once
// it has read that.
func (s *wsSession) close(r CloseReason, broken bool) {
	defer s.cancel() // the client's publishes still waiting end now
	// After ReasonClientGone and ReasonTooLarge the peer has its close frame
	// (its own, answered by gorilla; gorilla's 1009).
	if !broken && r != ReasonClientGone && r != ReasonTooLarge {
		msg := websocket.FormatCloseMessage(r.Code, r.Text)
		if s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(s.hub.cfg.WriteTimeout)) != nil {
			broken = true
		}
	}
	// A parked reader resumes to see the end (after the deadline or the
	// close that ends it).
	defer s.hub.readers.wake(s)
	if broken && r != ReasonClientGone {
		_ = s.net.Conn.Close() // nothing to linger for; ends the reader
		return
	}
	until := time.Now().Add(linger.Timeout)
	s.lingerUntil.Store(until.UnixNano())
	linger.CloseWrite(s.net.Conn)
	_ = s.net.Conn.SetReadDeadline(until) // the reader ends by then at the latest
}

// closeText fits a reason into a close frame (at most 123 bytes).
func closeText(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// headerHasToken reports whether a comma-separated header of h lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.TrimSpace(t) == token {
				return true
			}
		}
	}
	return false
}
