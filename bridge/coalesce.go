package bridge

import "encoding/binary"

// A WebSocket session's data frames bypass gorilla, which is left the
// handshake, the reading, and the control frames: the flushers and the
// session's writer frame the queued lines straight into the buffer they
// write (appendTextFrames), so that a client sent many messages at once
// costs one write, not one per frame (on loopback, a write is most of a
// delivery's cost), and no allocation per frame. Both write whole frames
// through the session's streamConn, one write at a time, so frames never
// interleave with gorilla's.

// appendTextFrames appends lines to dst as text frames: one per line, or,
// with batch, as many lines joined per frame as maxBatch bytes allow (a
// line larger than that on its own).
func appendTextFrames(dst []byte, lines [][]byte, batch bool, maxBatch int) []byte {
	if !batch {
		for _, line := range lines {
			dst = append(appendTextHeader(dst, len(line)), line...)
		}
		return dst
	}
	for len(lines) > 0 {
		n, size := 0, 0
		for n < len(lines) && (n == 0 || size+len(lines[n]) <= maxBatch) {
			size += len(lines[n])
			n++
		}
		dst = appendTextHeader(dst, size)
		for _, line := range lines[:n] {
			dst = append(dst, line...)
		}
		lines = lines[n:]
	}
	return dst
}

// maxTextHeader is the longest frame header a server writes.
const maxTextHeader = 10

// appendTextHeader appends the header of an unmasked, final text frame of
// n bytes (RFC 6455 §5.2; a server never masks).
func appendTextHeader(b []byte, n int) []byte {
	const finText = 0x81 // FIN, opcode 1 (text)
	switch {
	case n < 126:
		return append(b, finText, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, finText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, finText, 127), uint64(n))
	}
}

// pingFrame is an unmasked ping with no payload.
var pingFrame = []byte{0x89, 0x00}
