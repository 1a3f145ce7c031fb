package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// A minimal RFC 6455 client: the handshake, reading messages (fragments
// joined, pings answered, close reported) into a buffer the caller reuses,
// and masked writes. It exists because the load generator must read hundreds
// of thousands of small messages per second on one core without allocating
// per message.

// WebSocket opcodes.
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xa
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// errWSClosed is returned by ReadMessage when the peer sent a close frame.
var errWSClosed = errors.New("websocket: closed by the peer")

// wsCloseError carries the peer's close code and reason.
type wsCloseError struct {
	Code   int
	Reason string
}

func (e *wsCloseError) Error() string {
	return fmt.Sprintf("websocket: closed by the peer: %d %s", e.Code, e.Reason)
}

func (e *wsCloseError) Unwrap() error { return errWSClosed }

type wsConn struct {
	conn        net.Conn
	br          *bufio.Reader
	maxMessage  int
	subprotocol string

	wmu sync.Mutex // serialises writes: pongs from the reader, pings and close from others
}

// dialWS opens a WebSocket to rawURL (ws://host:port/path), which must be a
// loopback address, offering subprotocols.
func dialWS(ctx context.Context, rawURL string, subprotocols []string, readBuf int) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("websocket: scheme %q, want ws", u.Scheme)
	}
	conn, err := dialLoopback(ctx, u.Host)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	c, err := handshakeWS(conn, u, subprotocols, readBuf)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func handshakeWS(conn net.Conn, u *url.URL, subprotocols []string, readBuf int) (*wsConn, error) {
	var nonce [16]byte
	binary.LittleEndian.PutUint64(nonce[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(nonce[8:], rand.Uint64())
	key := base64.StdEncoding.EncodeToString(nonce[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", u.RequestURI(), u.Host)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key)
	if len(subprotocols) > 0 {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", strings.Join(subprotocols, ", "))
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, fmt.Errorf("websocket: send handshake: %w", err)
	}
	br := bufio.NewReaderSize(conn, max(readBuf, 512))
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, fmt.Errorf("websocket: read handshake response: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("websocket: handshake answered %s", resp.Status)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("websocket: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	return &wsConn{
		conn:        conn,
		br:          br,
		maxMessage:  16 << 20,
		subprotocol: resp.Header.Get("Sec-WebSocket-Protocol"),
	}, nil
}

// ReadMessage reads the next data message, its fragments joined, into
// buf[:0] (grown as needed) and returns it with its opcode. Pings are
// answered and pongs skipped on the way; a close frame is answered and
// reported as a *wsCloseError.
func (c *wsConn) ReadMessage(buf []byte) (op byte, msg []byte, err error) {
	msg = buf[:0]
	op = 0xff
	for {
		fin, fop, payload, err := c.readFrame(msg)
		if err != nil {
			return 0, msg, err
		}
		switch fop {
		case wsPing:
			ping := append([]byte(nil), payload[len(msg):]...)
			if err := c.WriteFrame(wsPong, ping, time.Now().Add(5*time.Second)); err != nil {
				return 0, msg, err
			}
			continue
		case wsPong:
			continue
		case wsClose:
			ce := &wsCloseError{Code: 1005}
			if p := payload[len(msg):]; len(p) >= 2 {
				ce.Code, ce.Reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			_ = c.WriteFrame(wsClose, binary.BigEndian.AppendUint16(nil, uint16(ce.Code)), time.Now().Add(time.Second))
			return 0, msg, ce
		case wsText, wsBinary:
			if op != 0xff {
				return 0, msg, errors.New("websocket: new message inside a fragmented one")
			}
			op = fop
		case wsContinuation:
			if op == 0xff {
				return 0, msg, errors.New("websocket: continuation without a message")
			}
		default:
			return 0, msg, fmt.Errorf("websocket: unknown opcode %#x", fop)
		}
		msg = payload
		if fin {
			return op, msg, nil
		}
	}
}

// readFrame reads one frame and appends its payload to dst. For a control
// frame the payload is dst plus the control payload; the caller slices it.
func (c *wsConn) readFrame(dst []byte) (fin bool, op byte, out []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return false, 0, dst, err
	}
	fin, op = hdr[0]&0x80 != 0, hdr[0]&0x0f
	if hdr[1]&0x80 != 0 {
		return false, 0, dst, errors.New("websocket: the server masked a frame")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return false, 0, dst, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return false, 0, dst, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if op >= wsClose && (n > 125 || !fin) {
		return false, 0, dst, errors.New("websocket: invalid control frame")
	}
	if uint64(len(dst))+n > uint64(c.maxMessage) {
		return false, 0, dst, fmt.Errorf("websocket: message over %d bytes", c.maxMessage)
	}
	start := len(dst)
	dst = growLen(dst, int(n))
	if _, err := io.ReadFull(c.br, dst[start:]); err != nil {
		return false, 0, dst[:start], err
	}
	return fin, op, dst, nil
}

// growLen extends b by n bytes, reallocating when needed.
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), max(2*cap(b), len(b)+n, 512))
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// WriteFrame writes one masked, final frame before deadline.
func (c *wsConn) WriteFrame(op byte, payload []byte, deadline time.Time) error {
	frame := make([]byte, 0, 14+len(payload))
	frame = append(frame, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xffff:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i&3])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(deadline)
	_, err := c.conn.Write(frame)
	return err
}

// Close sends a normal close frame, best effort, and closes the connection.
// It is safe to call from any goroutine, more than once.
func (c *wsConn) Close() error {
	_ = c.WriteFrame(wsClose, binary.BigEndian.AppendUint16(nil, 1000), time.Now().Add(100*time.Millisecond))
	return c.conn.Close()
}
