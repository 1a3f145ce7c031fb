package main

import (
	"bufio"
	"context"
	"fmt"
	"time"
)

// dialNATSPublisher connects a NATS publisher over TCP (the server's client
// port): it reads the INFO, sends CONNECT and a PING, and returns once the
// PONG says the connection is accepted. Its messages go to benchChannel
// whatever topic run is given. Its reader answers the server's PINGs.
func dialNATSPublisher(ctx context.Context, addr string) (*publisher, error) {
	conn, err := dialLoopback(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("nats publisher: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(natsConnectLine + "PING\r\n")); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("nats publisher: send CONNECT: %w", err)
	}
	dec := newNATSDecoder(1 << 16)
	buf := make([]byte, 4096)
	for ready := false; !ready; {
		op, ok, err := dec.Next()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("nats publisher: %w", err)
		}
		if ok {
			switch op.Kind {
			case natsPong:
				ready = true
			case natsErr:
				_ = conn.Close()
				return nil, fmt.Errorf("nats publisher: %w: %s", errNATSRefused, op.Arg)
			}
			continue
		}
		n, err := conn.Read(buf)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("nats publisher: wait for PONG: %w", err)
		}
		dec.Write(buf[:n])
	}
	_ = conn.SetDeadline(time.Time{})
	p := &publisher{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), done: make(chan struct{}),
		encode: func(dst []byte, _ string, payload []byte) []byte {
			return appendNATSPub(dst, benchChannel, payload)
		},
		keepAlive: []byte("PING\r\n")}
	go p.answerNATS(dec, buf)
	return p, nil
}

// answerNATS reads what the server sends a publisher and answers its PINGs
// (a client that does not is disconnected as stale); it ends when the
// connection closes or the server sends something it cannot read.
func (p *publisher) answerNATS(dec *natsDecoder, buf []byte) {
	defer close(p.done)
	for {
		for {
			op, ok, err := dec.Next()
			if err != nil || !ok {
				if err != nil {
					return
				}
				break
			}
			if op.Kind == natsPing {
				p.wmu.Lock()
				_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = p.bw.WriteString("PONG\r\n")
				_ = p.bw.Flush()
				p.wmu.Unlock()
			}
		}
		n, err := p.conn.Read(buf)
		if err != nil {
			return
		}
		dec.Write(buf[:n])
	}
}
