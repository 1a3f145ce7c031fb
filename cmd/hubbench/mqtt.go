package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A minimal MQTT 3.1.1 codec: what a QoS 0 publisher and a QoS 0 subscriber
// need, and no more. The decoder is a stream decoder: bytes go in as they
// arrive (a WebSocket frame may hold part of a packet, or several packets),
// whole packets come out.

// MQTT control packet types (the high nibble of the first byte).
const (
	mqttConnect     = 1
	mqttConnack     = 2
	mqttPublish     = 3
	mqttSubscribe   = 8
	mqttSuback      = 9
	mqttPingreq     = 12
	mqttPingresp    = 13
	mqttDisconnect  = 14
	mqttMaxRemLen   = 268_435_455 // the largest remaining length 4 bytes can say
	mqttMaxVarBytes = 4
)

// Errors of the MQTT codec.
var (
	errMQTTMalformed = errors.New("mqtt: malformed packet")
	errMQTTTooLarge  = errors.New("mqtt: packet larger than the decoder's limit")
)

// appendRemLen appends n as MQTT's variable byte integer.
func appendRemLen(dst []byte, n int) []byte {
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			return dst
		}
	}
}

// readRemLen decodes a variable byte integer at the start of b. It returns
// the value and the number of bytes it took; n == 0 means b is too short to
// tell yet.
func readRemLen(b []byte) (v, n int, err error) {
	mult := 1
	for i := 0; i < mqttMaxVarBytes; i++ {
		if i >= len(b) {
			return 0, 0, nil
		}
		v += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return v, i + 1, nil
		}
		mult *= 128
	}
	return 0, 0, fmt.Errorf("%w: remaining length longer than 4 bytes", errMQTTMalformed)
}

func appendMQTTString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendConnect appends a CONNECT with a clean session, no will and no
// credentials.
func appendConnect(dst []byte, clientID string, keepAlive uint16) []byte {
	body := make([]byte, 0, 12+len(clientID))
	body = appendMQTTString(body, "MQTT")
	body = append(body, 4, 0x02) // protocol level 4 (3.1.1), flags: clean session
	body = binary.BigEndian.AppendUint16(body, keepAlive)
	body = appendMQTTString(body, clientID)
	dst = append(dst, mqttConnect<<4)
	dst = appendRemLen(dst, len(body))
	return append(dst, body...)
}

// appendSubscribe appends a SUBSCRIBE to one filter at QoS 0.
func appendSubscribe(dst []byte, packetID uint16, filter string) []byte {
	dst = append(dst, mqttSubscribe<<4|0x02) // reserved flags 0010
	dst = appendRemLen(dst, 2+2+len(filter)+1)
	dst = binary.BigEndian.AppendUint16(dst, packetID)
	dst = appendMQTTString(dst, filter)
	return append(dst, 0) // requested QoS 0
}

// appendPublish appends a QoS 0 PUBLISH, not retained.
func appendPublish(dst []byte, topic string, payload []byte) []byte {
	dst = append(dst, mqttPublish<<4)
	dst = appendRemLen(dst, 2+len(topic)+len(payload))
	dst = appendMQTTString(dst, topic)
	return append(dst, payload...)
}

func appendPingreq(dst []byte) []byte    { return append(dst, mqttPingreq<<4, 0) }
func appendDisconnect(dst []byte) []byte { return append(dst, mqttDisconnect<<4, 0) }

// mqttPacket is one decoded packet. Its slices point into the decoder's
// buffer and are valid only until the next call to the decoder.
type mqttPacket struct {
	Type     byte
	Flags    byte
	Body     []byte // the variable header and payload
	Topic    []byte // PUBLISH
	Payload  []byte // PUBLISH
	PacketID uint16 // SUBACK, and PUBLISH with QoS > 0
	Codes    []byte // SUBACK return codes; CONNACK: [session present, return code]
}

// mqttDecoder splits a byte stream into MQTT packets.
type mqttDecoder struct {
	buf   []byte
	off   int // where the first undecoded byte is
	limit int // the largest packet accepted, header included
}

func newMQTTDecoder(limit int) *mqttDecoder {
	return &mqttDecoder{limit: min(limit, mqttMaxRemLen)}
}

// Write appends bytes read from the connection. Packets returned by Next
// before it are no longer valid.
func (d *mqttDecoder) Write(p []byte) {
	switch {
	case d.off == len(d.buf):
		d.buf, d.off = d.buf[:0], 0
	case d.off > cap(d.buf)/2:
		n := copy(d.buf, d.buf[d.off:])
		d.buf, d.off = d.buf[:n], 0
	}
	d.buf = append(d.buf, p...)
}

// Next decodes the next whole packet, if the buffer holds one. ok is false
// when more bytes are needed. The packet is valid until the next Write.
func (d *mqttDecoder) Next() (pk mqttPacket, ok bool, err error) {
	b := d.buf[d.off:]
	if len(b) < 2 {
		return pk, false, nil
	}
	remLen, n, err := readRemLen(b[1:])
	if err != nil || n == 0 {
		return pk, false, err
	}
	total := 1 + n + remLen
	if total > d.limit {
		return pk, false, fmt.Errorf("%w: %d bytes", errMQTTTooLarge, total)
	}
	if len(b) < total {
		return pk, false, nil
	}
	pk.Type, pk.Flags = b[0]>>4, b[0]&0x0f
	pk.Body = b[1+n : total]
	d.off += total
	return pk, true, parseBody(&pk)
}

// Buffered is how many bytes wait for the rest of their packet.
func (d *mqttDecoder) Buffered() int { return len(d.buf) - d.off }

func parseBody(pk *mqttPacket) error {
	b := pk.Body
	switch pk.Type {
	case mqttConnack:
		if len(b) != 2 {
			return fmt.Errorf("%w: CONNACK of %d bytes", errMQTTMalformed, len(b))
		}
		pk.Codes = b
	case mqttSuback:
		if len(b) < 3 {
			return fmt.Errorf("%w: SUBACK of %d bytes", errMQTTMalformed, len(b))
		}
		pk.PacketID = binary.BigEndian.Uint16(b)
		pk.Codes = b[2:]
	case mqttPublish:
		if len(b) < 2 {
			return fmt.Errorf("%w: PUBLISH of %d bytes", errMQTTMalformed, len(b))
		}
		tl := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+tl {
			return fmt.Errorf("%w: PUBLISH topic of %d bytes in %d", errMQTTMalformed, tl, len(b))
		}
		pk.Topic, b = b[2:2+tl], b[2+tl:]
		if qos := (pk.Flags >> 1) & 3; qos > 0 {
			if len(b) < 2 {
				return fmt.Errorf("%w: PUBLISH QoS %d without a packet id", errMQTTMalformed, qos)
			}
			pk.PacketID, b = binary.BigEndian.Uint16(b), b[2:]
		}
		pk.Payload = b
	case mqttPingresp:
		if len(b) != 0 {
			return fmt.Errorf("%w: PINGRESP with a body", errMQTTMalformed)
		}
	}
	return nil
}
