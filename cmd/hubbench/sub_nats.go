package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// benchChannel is the subject (NATS) or channel (Centrifugo) the peers
// without MQTT topics publish to and subscribe on.
const benchChannel = "bench"

// natsWSSub is a NATS subscriber over WebSocket, as nats.ws in a browser:
// CONNECT, SUB bench 1, then PING, and the subscription holds once the
// server's PONG comes back (the server handles a connection's operations
// in order). Afterwards it receives MSG operations and answers the
// server's PINGs.
type natsWSSub struct {
	ws  *wsConn
	dec *natsDecoder
	st  *subState
	buf []byte
}

var errNATSRefused = errors.New("nats: refused")

func connectNATSWS(ctx context.Context, url string, st *subState) (*natsWSSub, error) {
	ws, err := dialWS(ctx, url, nil, 16<<10)
	if err != nil {
		return nil, err
	}
	s := &natsWSSub{ws: ws, dec: newNATSDecoder(1 << 20), st: st}
	if err := s.handshake(ctx); err != nil {
		_ = ws.conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *natsWSSub) handshake(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = s.ws.conn.SetReadDeadline(deadline)
	defer func() { _ = s.ws.conn.SetReadDeadline(time.Time{}) }()
	hello := append([]byte(natsConnectLine), appendNATSSub(nil, benchChannel, 1)...)
	hello = append(hello, "PING\r\n"...)
	if err := s.ws.WriteFrame(wsBinary, hello, deadline); err != nil {
		return fmt.Errorf("nats-ws: send CONNECT: %w", err)
	}
	for range 64 { // INFO, then PONG; messages may come before it
		op, err := s.next()
		if err != nil {
			return fmt.Errorf("nats-ws: wait for PONG: %w", err)
		}
		switch op.Kind {
		case natsPong:
			return nil
		case natsErr:
			return fmt.Errorf("%w: %s", errNATSRefused, op.Arg)
		case natsMsg:
			s.st.got(op.Payload)
		case natsPing:
			if err := s.pong(); err != nil {
				return err
			}
		}
	}
	return errors.New("nats-ws: no PONG within 64 operations")
}

// next returns the next operation, reading WebSocket messages as needed.
func (s *natsWSSub) next() (natsOp, error) {
	for range 1 << 20 {
		op, ok, err := s.dec.Next()
		if err != nil || ok {
			return op, err
		}
		_, msg, err := s.ws.ReadMessage(s.buf)
		if err != nil {
			return op, err
		}
		s.buf = msg
		s.dec.Write(msg)
	}
	return natsOp{}, errors.New("nats-ws: no whole operation in 1M messages")
}

// read handles what the decoder holds (the handshake's last frame may have
// carried more than its PONG), then each message as it comes.
func (s *natsWSSub) read() error {
	for {
		for {
			op, ok, err := s.dec.Next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			switch op.Kind {
			case natsMsg:
				s.st.got(op.Payload)
			case natsPing:
				if err := s.pong(); err != nil {
					return err
				}
			case natsErr:
				return fmt.Errorf("nats-ws: the server said -ERR %s", op.Arg)
			}
		}
		_, msg, err := s.ws.ReadMessage(s.buf)
		if err != nil {
			return err
		}
		s.buf = msg
		s.dec.Write(msg)
	}
}

func (s *natsWSSub) pong() error {
	return s.ws.WriteFrame(wsBinary, []byte("PONG\r\n"), time.Now().Add(5*time.Second))
}

// ping is not needed: the server pings, and read answers.
func (s *natsWSSub) ping() error { return nil }

func (s *natsWSSub) close() { _ = s.ws.Close() }
