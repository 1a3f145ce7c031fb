package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// A minimal NATS client protocol codec (docs.nats.io, "Client Protocol"):
// what a subscriber and a publisher of one subject need. The server sends
// text lines ending in CRLF: INFO, MSG (followed by the payload and CRLF),
// PING, PONG, +OK and -ERR. Over WebSocket a frame may hold part of a line
// or several, so the decoder is a stream decoder like mqttDecoder.

// Kinds of what the NATS server sends.
const (
	natsInfo = iota + 1
	natsMsg
	natsPing
	natsPong
	natsOK
	natsErr
)

// errNATSMalformed is a line the decoder cannot read.
var errNATSMalformed = errors.New("nats: malformed protocol line")

// natsOp is one decoded operation. Arg is what follows the operation's name
// (INFO's JSON, -ERR's message); Payload is a MSG's payload. Both point into
// the decoder's buffer and are valid until the next Write.
type natsOp struct {
	Kind    int
	Arg     []byte
	Payload []byte
}

// natsDecoder splits a byte stream into NATS operations.
type natsDecoder struct {
	buf   []byte
	off   int
	limit int // the longest line or MSG (line, payload and CRLFs) accepted
}

func newNATSDecoder(limit int) *natsDecoder { return &natsDecoder{limit: limit} }

// Write appends bytes read from the connection. Operations returned by
// Next before it are no longer valid.
func (d *natsDecoder) Write(p []byte) {
	switch {
	case d.off == len(d.buf):
		d.buf, d.off = d.buf[:0], 0
	case d.off > cap(d.buf)/2:
		n := copy(d.buf, d.buf[d.off:])
		d.buf, d.off = d.buf[:n], 0
	}
	d.buf = append(d.buf, p...)
}

var crlf = []byte("\r\n")

// Next decodes the next whole operation, if the buffer holds one; ok is
// false when more bytes are needed.
func (d *natsDecoder) Next() (op natsOp, ok bool, err error) {
	b := d.buf[d.off:]
	eol := bytes.Index(b, crlf)
	if eol < 0 {
		if len(b) > d.limit {
			return op, false, fmt.Errorf("%w: a line of more than %d bytes", errNATSMalformed, d.limit)
		}
		return op, false, nil
	}
	line := b[:eol]
	name, arg, _ := bytes.Cut(line, []byte{' '})
	consumed := eol + 2
	switch {
	case bytes.EqualFold(name, []byte("MSG")):
		// MSG <subject> <sid> [reply-to] <#bytes>
		f := bytes.Fields(arg)
		if len(f) < 3 || len(f) > 4 {
			return op, false, fmt.Errorf("%w: %.100q", errNATSMalformed, line)
		}
		n, perr := strconv.Atoi(string(f[len(f)-1]))
		if perr != nil || n < 0 {
			return op, false, fmt.Errorf("%w: %.100q", errNATSMalformed, line)
		}
		total := consumed + n + 2
		if total > d.limit {
			return op, false, fmt.Errorf("%w: a message of %d bytes, over the limit of %d", errNATSMalformed, n, d.limit)
		}
		if len(b) < total {
			return op, false, nil
		}
		if !bytes.Equal(b[consumed+n:total], crlf) {
			return op, false, fmt.Errorf("%w: MSG payload of %d bytes not followed by CRLF", errNATSMalformed, n)
		}
		op = natsOp{Kind: natsMsg, Arg: arg, Payload: b[consumed : consumed+n]}
		consumed = total
	case bytes.EqualFold(name, []byte("PING")):
		op.Kind = natsPing
	case bytes.EqualFold(name, []byte("PONG")):
		op.Kind = natsPong
	case bytes.EqualFold(name, []byte("INFO")):
		op = natsOp{Kind: natsInfo, Arg: arg}
	case bytes.Equal(name, []byte("+OK")):
		op.Kind = natsOK
	case bytes.Equal(name, []byte("-ERR")):
		op = natsOp{Kind: natsErr, Arg: arg}
	default:
		return op, false, fmt.Errorf("%w: %.100q", errNATSMalformed, line)
	}
	d.off += consumed
	return op, true, nil
}

// The client's side of the protocol.

// natsConnectLine asks for no +OK after every operation (verbose false),
// so that a publisher's PUBs are not each answered.
const natsConnectLine = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"name\":\"hubbench\"}\r\n"

// appendNATSPub appends "PUB <subject> <#bytes>\r\n<payload>\r\n".
func appendNATSPub(dst []byte, subject string, payload []byte) []byte {
	dst = append(dst, "PUB "...)
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, crlf...)
	dst = append(dst, payload...)
	return append(dst, crlf...)
}

// appendNATSSub appends "SUB <subject> <sid>\r\n".
func appendNATSSub(dst []byte, subject string, sid int) []byte {
	dst = append(dst, "SUB "...)
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(sid), 10)
	return append(dst, crlf...)
}
