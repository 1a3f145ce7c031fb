package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/linger"
)

// wsListenerID names MQTT-over-WebSocket clients' listener in mochi.
const wsListenerID = "mqtt-ws"

// WebSocketHandler serves MQTT over WebSocket (subprotocol "mqtt", as
// MQTT.js and Paho JS speak it) on the hub's HTTP port, typically at /mqtt.
// A handshake from a page of another origin is refused unless
// allowedOrigins lists it. A request the HTTP layer authenticated (see
// auth.Authenticated: a dashboard's session cookie, say) makes its user
// the MQTT client's user when CONNECT names none; else CONNECT's
// credentials decide, as on the TCP listener. Close disconnects these
// clients like the others.
func (e *Embedded) WebSocketHandler(allowedOrigins []string) http.Handler {
	return &wsHandler{
		e: e,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
			Subprotocols:    []string{"mqtt", "mqttv3.1"},
			CheckOrigin: func(r *http.Request) bool {
				origin := r.Header.Get("Origin")
				return origin == "" || bridge.OriginAllowed(origin, r, allowedOrigins)
			},
			Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
				code := bridge.CodeBadRequest
				if status == http.StatusForbidden {
					code = bridge.CodeForbidden
				}
				httpx.WriteError(w, status, code, reason.Error())
			},
		},
	}
}

type wsHandler struct {
	e        *Embedded
	upgrader websocket.Upgrader
}

func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.e.closed.Load() {
		httpx.WriteError(w, http.StatusServiceUnavailable, bridge.CodeUnavailable, "the broker is shutting down")
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ws.SetReadLimit(int64(h.e.cfg.MaxPacketSize) + 16)
	c := &wsConn{ws: ws, set: &h.e.ws.conns, remote: ws.RemoteAddr()}
	if a, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		c.remote = a // the client behind a trusted proxy, as the HTTP layer found it (an IP: no lookup)
	}
	c.who, c.authenticated = auth.Authenticated(r.Context())
	if !h.e.ws.track(c) {
		_ = ws.Close()
		return
	}
	// The connection is hijacked: net/http needs its goroutine no more, and
	// its stack, deep from the handlers around this one, would stay with an
	// idle client. mochi reads the client's packets on a goroutine of its own.
	go h.serve(c, r.RemoteAddr)
}

// serve is the goroutine of one MQTT-over-WebSocket client, as
// tcpListener.serveConn for TCP: small frames below mochi's reader.
func (h *wsHandler) serve(c *wsConn, remote string) {
	defer h.e.ws.untrack(c)
	// mochi moves the deadline to the client's keep alive once CONNECT is read.
	_ = c.ws.SetReadDeadline(time.Now().Add(h.e.ws.connectTimeout))
	h.ended(c, remote, h.e.server.EstablishConnection(wsListenerID, c))
}

// ended logs why a client's connection ended.
//
//go:noinline
func (h *wsHandler) ended(c *wsConn, remote string, err error) {
	switch {
	case h.e.ws.ended(c, err):
		h.e.cfg.Logger.Debug("mqtt over websocket closed: no CONNECT in time", "remote", remote, "timeout", h.e.ws.connectTimeout)
	case err != nil:
		h.e.cfg.Logger.Debug("mqtt over websocket client ended", "remote", remote, "err", err)
	}
}

// wsListener is the mochi listener of MQTT-over-WebSocket clients: it
// accepts nothing itself (the HTTP server does), but lets mochi's Close
// disconnect them, and counts them for the limits.
type wsListener struct {
	conns
	disconnect func(listenerID string) // tells its clients the server is going away
}

var _ listeners.Listener = (*wsListener)(nil)

func (l *wsListener) ID() string                  { return wsListenerID }
func (l *wsListener) Address() string             { return "/mqtt on the HTTP port" }
func (l *wsListener) Protocol() string            { return "ws" }
func (l *wsListener) Init(*slog.Logger) error     { return nil }
func (l *wsListener) Serve(listeners.EstablishFn) {}
func (l *wsListener) Close(listeners.CloseFn) {
	l.shut()
	l.disconnect(wsListenerID)
	l.cut() // as tcpListener.Close
}

// wsConn is a WebSocket as the net.Conn mochi reads MQTT packets from:
// binary messages carry the byte stream, in any split. It closes as
// lingeringConn says, with a close frame first.
type wsConn struct {
	ws     *websocket.Conn
	set    *conns
	r      io.Reader // the message being read
	remote net.Addr  // the client's address: for the limits, the throttle and the logs

	who           auth.Identity // the HTTP layer's user, if it authenticated one
	authenticated bool

	wmu sync.Mutex // mochi serialises its writes; this guards against any other

	connState
}

var errTextFrame = errors.New("MQTT over WebSocket takes binary messages only")

func (c *wsConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.write(p); err != nil {
		_ = c.Close() // a message cut short leaves the stream unusable
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(c.set.writeDeadline())
	return c.ws.WriteMessage(websocket.BinaryMessage, p)
}

// Close sends a close frame, ends the writing side and mochi's reads; see
// lingeringConn.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.wmu.Lock()
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(lingerTimeout))
		c.wmu.Unlock()
		linger.CloseWrite(c.ws.NetConn())
		_ = c.ws.NetConn().SetReadDeadline(time.Now()) // mochi's reader returns now
	})
	return nil
}

func (c *wsConn) linger() {
	_ = c.Close()
	conn := c.ws.NetConn()
	linger.Drain(conn, time.Now().Add(lingerTimeout), lingerBytes) // until the client closes too, or the deadline
	_ = conn.Close()
}

func (c *wsConn) abort() {
	c.closed.Store(true)
	_ = c.ws.NetConn().Close()
}

func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.remote }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.NetConn().SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// httpIdentity is the user the HTTP layer authenticated for this connection.
func (c *wsConn) httpIdentity() (auth.Identity, bool) { return c.who, c.authenticated }
