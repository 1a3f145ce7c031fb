package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// centrifugoSub is a Centrifugo subscriber speaking the JSON protocol over
// WebSocket (/connection/websocket), as centrifuge-js in a browser.
type centrifugoSub struct {
	ws  *wsConn
	st  *subState
	buf []byte
	err error // set by lines: the first fatal thing a frame held
}

var errCentrifugoRefused = errors.New("centrifugo: refused")

func connectCentrifugo(ctx context.Context, url string, st *subState) (*centrifugoSub, error) {
	ws, err := dialWS(ctx, url, nil, 16<<10)
	if err != nil {
		return nil, err
	}
	s := &centrifugoSub{ws: ws, st: st}
	if err := s.handshake(ctx); err != nil {
		_ = ws.conn.Close()
		return nil, err
	}
	return s, nil
}

// handshake sends connect and subscribe and waits for both replies.
func (s *centrifugoSub) handshake(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = s.ws.conn.SetReadDeadline(deadline)
	defer func() { _ = s.ws.conn.SetReadDeadline(time.Time{}) }()
	if err := s.ws.WriteFrame(wsText, []byte(centrifugoConnectCmd+"\n"+centrifugoSubscribeCmd), deadline); err != nil {
		return fmt.Errorf("centrifugo: send connect: %w", err)
	}
	want := uint32(1)
	for range 64 {
		_, msg, err := s.ws.ReadMessage(s.buf)
		if err != nil {
			return fmt.Errorf("centrifugo: wait for reply %d: %w", want, err)
		}
		s.buf = msg
		var herr error
		forEachLine(msg, func(line []byte) {
			if herr != nil {
				return
			}
			switch classifyCentrifugo(line) {
			case centrifugoReply:
				if want > 2 {
					return
				}
				if herr = parseCentrifugoReply(line, want); herr == nil {
					want++
				}
			case centrifugoPush:
				s.st.got(line)
			case centrifugoPing:
				herr = s.pong()
			}
		})
		if herr != nil {
			return herr
		}
		if want > 2 {
			return nil
		}
	}
	return errors.New("centrifugo: no subscribe reply within 64 frames")
}

func (s *centrifugoSub) read() error {
	for {
		_, msg, err := s.ws.ReadMessage(s.buf)
		if err != nil {
			return err
		}
		s.buf = msg
		forEachLine(msg, s.line)
		if s.err != nil {
			return s.err
		}
	}
}

// line handles one line of a frame after the handshake.
func (s *centrifugoSub) line(line []byte) {
	switch classifyCentrifugo(line) {
	case centrifugoPush:
		s.st.got(line)
	case centrifugoPing:
		if err := s.pong(); err != nil && s.err == nil {
			s.err = err
		}
	default:
		s.st.sink.others.Add(1)
	}
}

func (s *centrifugoSub) pong() error {
	return s.ws.WriteFrame(wsText, centrifugoPingLine, time.Now().Add(5*time.Second))
}

// ping is not needed: the server pings, and read answers.
func (s *centrifugoSub) ping() error { return nil }

func (s *centrifugoSub) close() { _ = s.ws.Close() }
