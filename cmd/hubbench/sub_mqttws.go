package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// mqttWSSub is an MQTT 3.1.1 subscriber over WebSocket (subprotocol "mqtt"),
// as MQTT.js in a browser: CONNECT, SUBSCRIBE QoS 0, then PUBLISH packets,
// which may be split across WebSocket messages or several to one.
type mqttWSSub struct {
	ws  *wsConn
	dec *mqttDecoder
	st  *subState
	buf []byte
}

// mqttKeepAlive is the keep-alive the subscribers and the publisher ask for;
// the run pings well within it.
const mqttKeepAlive = 60

var errMQTTRefused = errors.New("mqtt: refused")

func connectMQTTWS(ctx context.Context, url, filter, clientID string, st *subState) (*mqttWSSub, error) {
	ws, err := dialWS(ctx, url, []string{"mqtt"}, 16<<10)
	if err != nil {
		return nil, err
	}
	s := &mqttWSSub{ws: ws, dec: newMQTTDecoder(1 << 20), st: st}
	if err := s.handshake(ctx, filter, clientID); err != nil {
		_ = ws.conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *mqttWSSub) handshake(ctx context.Context, filter, clientID string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = s.ws.conn.SetReadDeadline(deadline)
	defer func() { _ = s.ws.conn.SetReadDeadline(time.Time{}) }()
	if err := s.ws.WriteFrame(wsBinary, appendConnect(nil, clientID, mqttKeepAlive), deadline); err != nil {
		return fmt.Errorf("mqtt-ws: send CONNECT: %w", err)
	}
	pk, err := s.next()
	if err != nil {
		return fmt.Errorf("mqtt-ws: wait for CONNACK: %w", err)
	}
	if pk.Type != mqttConnack || pk.Codes[1] != 0 {
		return fmt.Errorf("%w: CONNECT answered with packet type %d %v", errMQTTRefused, pk.Type, pk.Codes)
	}
	if err := s.ws.WriteFrame(wsBinary, appendSubscribe(nil, 1, filter), deadline); err != nil {
		return fmt.Errorf("mqtt-ws: send SUBSCRIBE: %w", err)
	}
	for range 16 { // retained messages may come before the SUBACK
		pk, err := s.next()
		if err != nil {
			return fmt.Errorf("mqtt-ws: wait for SUBACK: %w", err)
		}
		switch {
		case pk.Type == mqttPublish:
			s.st.got(pk.Payload)
		case pk.Type != mqttSuback || pk.PacketID != 1:
			return fmt.Errorf("mqtt-ws: unexpected packet type %d before SUBACK", pk.Type)
		case pk.Codes[0] >= 0x80:
			return fmt.Errorf("%w: SUBSCRIBE %q answered %#x", errMQTTRefused, filter, pk.Codes[0])
		default:
			return nil
		}
	}
	return errors.New("mqtt-ws: no SUBACK within 16 packets")
}

// next returns the next packet, reading WebSocket messages as needed.
func (s *mqttWSSub) next() (mqttPacket, error) {
	for range 1 << 20 {
		pk, ok, err := s.dec.Next()
		if err != nil || ok {
			return pk, err
		}
		_, msg, err := s.ws.ReadMessage(s.buf)
		if err != nil {
			return pk, err
		}
		s.buf = msg
		s.dec.Write(msg)
	}
	return mqttPacket{}, errors.New("mqtt-ws: no whole packet in 1M messages")
}

// read handles what the decoder holds (the SUBACK's frame may have carried
// more), then each message as it comes.
func (s *mqttWSSub) read() error {
	for {
		for {
			pk, ok, err := s.dec.Next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if pk.Type == mqttPublish {
				s.st.got(pk.Payload)
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

func (s *mqttWSSub) ping() error {
	return s.ws.WriteFrame(wsBinary, appendPingreq(nil), time.Now().Add(5*time.Second))
}

func (s *mqttWSSub) close() {
	_ = s.ws.WriteFrame(wsBinary, appendDisconnect(nil), time.Now().Add(100*time.Millisecond))
	_ = s.ws.Close()
}
