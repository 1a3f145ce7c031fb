package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// mqttTCPSub is an MQTT 3.1.1 device on plain TCP with one subscription,
// its own command topic (deviceFilter): what an idle device costs a broker.
// It reads what arrives (bench payloads are counted like any subscriber's).
type mqttTCPSub struct {
	conn net.Conn
	dec  *mqttDecoder
	st   *subState
	buf  []byte
	wmu  sync.Mutex // serialises PINGREQ and DISCONNECT
}

// deviceFilter is the topic device i subscribes to.
func deviceFilter(i int) string { return fmt.Sprintf("bench/dev/%d/cmd", i) }

// connectMQTTTCP dials addr (host:port, from a tcp:// URL), connects as
// clientID and subscribes to filter.
func connectMQTTTCP(ctx context.Context, url, filter, clientID string, st *subState) (*mqttTCPSub, error) {
	addr, ok := strings.CutPrefix(url, "tcp://")
	if !ok {
		return nil, fmt.Errorf("mqtt-tcp: URL %q, want tcp://host:port", url)
	}
	conn, err := dialLoopback(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt-tcp: %w", err)
	}
	s := &mqttTCPSub{conn: conn, dec: newMQTTDecoder(1 << 20), st: st, buf: make([]byte, 512)}
	if err := s.handshake(ctx, filter, clientID); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *mqttTCPSub) handshake(ctx context.Context, filter, clientID string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = s.conn.SetDeadline(deadline)
	defer func() { _ = s.conn.SetDeadline(time.Time{}) }()
	if _, err := s.conn.Write(appendConnect(nil, clientID, mqttKeepAlive)); err != nil {
		return fmt.Errorf("mqtt-tcp: send CONNECT: %w", err)
	}
	pk, err := s.next()
	if err != nil {
		return fmt.Errorf("mqtt-tcp: wait for CONNACK: %w", err)
	}
	if pk.Type != mqttConnack || pk.Codes[1] != 0 {
		return fmt.Errorf("%w: CONNECT answered with packet type %d %v", errMQTTRefused, pk.Type, pk.Codes)
	}
	if _, err := s.conn.Write(appendSubscribe(nil, 1, filter)); err != nil {
		return fmt.Errorf("mqtt-tcp: send SUBSCRIBE: %w", err)
	}
	for range 16 { // retained messages may come before the SUBACK
		pk, err := s.next()
		if err != nil {
			return fmt.Errorf("mqtt-tcp: wait for SUBACK: %w", err)
		}
		switch {
		case pk.Type == mqttPublish:
			s.st.got(pk.Payload)
		case pk.Type != mqttSuback || pk.PacketID != 1:
			return fmt.Errorf("mqtt-tcp: unexpected packet type %d before SUBACK", pk.Type)
		case pk.Codes[0] >= 0x80:
			return fmt.Errorf("%w: SUBSCRIBE %q answered %#x", errMQTTRefused, filter, pk.Codes[0])
		default:
			return nil
		}
	}
	return errors.New("mqtt-tcp: no SUBACK within 16 packets")
}

// next returns the next packet, reading as needed.
func (s *mqttTCPSub) next() (mqttPacket, error) {
	for range 1 << 20 {
		pk, ok, err := s.dec.Next()
		if err != nil || ok {
			return pk, err
		}
		n, err := s.conn.Read(s.buf)
		if err != nil {
			return pk, err
		}
		s.dec.Write(s.buf[:n])
	}
	return mqttPacket{}, errors.New("mqtt-tcp: no whole packet in 1M reads")
}

func (s *mqttTCPSub) read() error {
	for {
		pk, err := s.next()
		if err != nil {
			return err
		}
		if pk.Type == mqttPublish {
			s.st.got(pk.Payload)
		}
	}
}

func (s *mqttTCPSub) write(b []byte, timeout time.Duration) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := s.conn.Write(b)
	return err
}

func (s *mqttTCPSub) ping() error { return s.write(appendPingreq(nil), 5*time.Second) }

func (s *mqttTCPSub) close() {
	_ = s.write(appendDisconnect(nil), 100*time.Millisecond)
	_ = s.conn.Close()
}
