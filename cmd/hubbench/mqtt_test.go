package main

import (
	"bytes"
	"errors"
	"testing"
)

func TestRemLen(t *testing.T) {
	t.Parallel()
	cases := []struct {
		n    int
		wire []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xff, 0xff, 0x7f}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268435455, []byte{0xff, 0xff, 0xff, 0x7f}},
	}
	for _, c := range cases {
		if got := appendRemLen(nil, c.n); !bytes.Equal(got, c.wire) {
			t.Errorf("appendRemLen(%d) = % x, want % x", c.n, got, c.wire)
		}
		v, n, err := readRemLen(append(c.wire, 0xaa))
		if err != nil || v != c.n || n != len(c.wire) {
			t.Errorf("readRemLen(% x) = %d, %d, %v; want %d, %d", c.wire, v, n, err, c.n, len(c.wire))
		}
		if _, n, err := readRemLen(c.wire[:len(c.wire)-1]); n != 0 || err != nil {
			t.Errorf("readRemLen of a truncated % x: n=%d err=%v, want more bytes needed", c.wire, n, err)
		}
	}
	if _, _, err := readRemLen([]byte{0xff, 0xff, 0xff, 0xff, 0x01}); !errors.Is(err, errMQTTMalformed) {
		t.Errorf("a 5-byte remaining length: err %v, want errMQTTMalformed", err)
	}
}

func TestEncodeFixtures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"CONNECT", appendConnect(nil, "ab", 60), []byte{
			0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 'a', 'b'}},
		{"SUBSCRIBE", appendSubscribe(nil, 1, "a/#"), []byte{
			0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x00}},
		{"PUBLISH", appendPublish(nil, "a/b", []byte("hi")), []byte{
			0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}},
		{"PINGREQ", appendPingreq(nil), []byte{0xc0, 0x00}},
		{"DISCONNECT", appendDisconnect(nil), []byte{0xe0, 0x00}},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s = % x, want % x", c.name, c.got, c.want)
		}
	}
	// A payload past 127 bytes needs a second remaining-length byte.
	big := appendPublish(nil, "bench/t", bytes.Repeat([]byte{'x'}, 200))
	if !bytes.Equal(big[:3], []byte{0x30, 0xd1, 0x01}) { // 2+7+200 = 209
		t.Errorf("PUBLISH of 200 bytes starts % x, want 30 d1 01", big[:3])
	}
}

// stream is the server's side of a session: CONNACK, SUBACK, PUBLISH
// (short, long, QoS 1), PINGRESP.
func stream() []byte {
	var b []byte
	b = append(b, 0x20, 0x02, 0x00, 0x00)                                           // CONNACK accepted
	b = append(b, 0x90, 0x03, 0x00, 0x01, 0x00)                                     // SUBACK id 1, QoS 0 granted
	b = appendPublish(b, "bench/t", []byte(`{"s":1}`))                              // 1-byte remaining length
	b = appendPublish(b, "bench/t", bytes.Repeat([]byte{'y'}, 20000))               // 3-byte remaining length
	b = append(b, 0x32, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34, 'q', 'o', 's') // PUBLISH QoS 1, id 0x1234
	b = append(b, 0xd0, 0x00)                                                       // PINGRESP
	return b
}

type decoded struct {
	typ     byte
	id      uint16
	codes   string
	topic   string
	payload int
}

func decodeAll(t *testing.T, chunks [][]byte) []decoded {
	t.Helper()
	d := newMQTTDecoder(1 << 20)
	var out []decoded
	for _, c := range chunks {
		d.Write(c)
		for {
			pk, ok, err := d.Next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if !ok {
				break
			}
			out = append(out, decoded{pk.Type, pk.PacketID, string(pk.Codes), string(pk.Topic), len(pk.Payload)})
		}
	}
	if d.Buffered() != 0 {
		t.Fatalf("%d bytes left over", d.Buffered())
	}
	return out
}

func TestDecoderSplitAndJoined(t *testing.T) {
	t.Parallel()
	want := []decoded{
		{mqttConnack, 0, "\x00\x00", "", 0},
		{mqttSuback, 1, "\x00", "", 0},
		{mqttPublish, 0, "", "bench/t", 7},
		{mqttPublish, 0, "", "bench/t", 20000},
		{mqttPublish, 0x1234, "", "a/b", 3},
		{mqttPingresp, 0, "", "", 0},
	}
	check := func(name string, got []decoded) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d packets, want %d: %+v", name, len(got), len(want), got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: packet %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
	s := stream()
	check("all joined in one frame", decodeAll(t, [][]byte{s}))
	// Every split point: a packet (or its remaining length) cut across two frames.
	for cut := 1; cut < len(s); cut += 1 + cut/64 {
		check("split", decodeAll(t, [][]byte{s[:cut], s[cut:]}))
	}
	// One byte per frame.
	var bytewise [][]byte
	for i := range s {
		bytewise = append(bytewise, s[i:i+1])
	}
	check("one byte per frame", decodeAll(t, bytewise))
}

func TestDecoderErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", appendPublish(nil, "t", make([]byte, 300)), errMQTTTooLarge},
		{"5-byte length", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, errMQTTMalformed},
		{"topic past the end", []byte{0x30, 0x03, 0x00, 0x09, 'a'}, errMQTTMalformed},
		{"short CONNACK", []byte{0x20, 0x01, 0x00}, errMQTTMalformed},
		{"QoS 1 without id", []byte{0x32, 0x03, 0x00, 0x01, 'a'}, errMQTTMalformed},
	}
	for _, c := range cases {
		d := newMQTTDecoder(256)
		d.Write(c.in)
		if _, _, err := d.Next(); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}
