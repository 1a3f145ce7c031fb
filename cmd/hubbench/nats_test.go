package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// natsStream is what a NATS server sends a subscriber: INFO, +OK, MSG
// (short, with a reply subject, one holding CRLF, an empty one), PING,
// PONG, -ERR.
func natsStream() []byte {
	var b []byte
	b = append(b, "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n"...)
	b = append(b, "+OK\r\n"...)
	b = append(b, "MSG bench 1 7\r\n{\"s\":1}\r\n"...)
	b = append(b, "MSG bench 1 _INBOX.a 4\r\na\r\nb\r\n"...)
	b = append(b, "msg bench 1 0\r\n\r\n"...)
	b = append(b, "PING\r\nPONG\r\n"...)
	b = append(b, "-ERR 'Slow Consumer'\r\n"...)
	return b
}

type natsDecoded struct {
	kind    int
	arg     string
	payload string
}

func decodeNATS(t *testing.T, chunks [][]byte) []natsDecoded {
	t.Helper()
	d := newNATSDecoder(1 << 20)
	var out []natsDecoded
	for _, c := range chunks {
		d.Write(c)
		for {
			op, ok, err := d.Next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if !ok {
				break
			}
			out = append(out, natsDecoded{op.Kind, string(op.Arg), string(op.Payload)})
		}
	}
	if left := len(d.buf) - d.off; left != 0 {
		t.Fatalf("%d bytes left over", left)
	}
	return out
}

func TestNATSDecoderSplitAndJoined(t *testing.T) {
	t.Parallel()
	want := []natsDecoded{
		{natsInfo, `{"server_id":"x","max_payload":1048576}`, ""},
		{natsOK, "", ""},
		{natsMsg, "bench 1 7", `{"s":1}`},
		{natsMsg, "bench 1 _INBOX.a 4", "a\r\nb"},
		{natsMsg, "bench 1 0", ""},
		{natsPing, "", ""},
		{natsPong, "", ""},
		{natsErr, "'Slow Consumer'", ""},
	}
	s := natsStream()
	check := func(name string, got []natsDecoded) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d operations %+v, want %d", name, len(got), got, len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: operation %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
	check("whole", decodeNATS(t, [][]byte{s}))
	var bytewise [][]byte
	for i := range s {
		bytewise = append(bytewise, s[i:i+1])
	}
	check("byte by byte", decodeNATS(t, bytewise))
	check("in three", decodeNATS(t, [][]byte{s[:20], s[20:61], s[61:]}))
}

func TestNATSDecoderErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"HELLO\r\n",                 // unknown operation
		"MSG bench\r\n",             // too few fields
		"MSG bench 1 a b c\r\n",     // too many
		"MSG bench 1 x\r\n",         // a count that is no number
		"MSG bench 1 -1\r\n",        // a negative count
		"MSG bench 1 2\r\nabcd\r\n", // the payload is longer than said
		"MSG bench 1 99999\r\n",     // over the decoder's limit
	} {
		d := newNATSDecoder(1024)
		d.Write([]byte(in))
		if _, _, err := d.Next(); !errors.Is(err, errNATSMalformed) {
			t.Errorf("%q: error %v, want errNATSMalformed", in, err)
		}
	}
	d := newNATSDecoder(16)
	d.Write([]byte(strings.Repeat("x", 17))) // a line that never ends
	if _, _, err := d.Next(); !errors.Is(err, errNATSMalformed) {
		t.Errorf("a line past the limit: %v, want errNATSMalformed", err)
	}
	d = newNATSDecoder(1024)
	d.Write([]byte("MSG bench 1 5\r\nabc")) // incomplete: wait for more
	if _, ok, err := d.Next(); ok || err != nil {
		t.Errorf("incomplete MSG: ok %v, err %v; want neither", ok, err)
	}
}

func TestNATSEncode(t *testing.T) {
	t.Parallel()
	if got := appendNATSPub(nil, "bench", []byte("hello")); !bytes.Equal(got, []byte("PUB bench 5\r\nhello\r\n")) {
		t.Errorf("PUB = %q", got)
	}
	if got := appendNATSSub(nil, "bench", 1); !bytes.Equal(got, []byte("SUB bench 1\r\n")) {
		t.Errorf("SUB = %q", got)
	}
}
