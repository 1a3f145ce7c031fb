package broker

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// appendLongPacket appends a packet of type-and-flags first with body, of
// any length (a variable byte integer for the remaining length).
func appendLongPacket(dst []byte, first byte, body []byte) []byte {
	dst = append(dst, first)
	for n := len(body); ; {
		b := byte(n % 128)
		if n /= 128; n > 0 {
			dst = append(dst, b|0x80)
			continue
		}
		dst = append(dst, b)
		break
	}
	return append(dst, body...)
}

// TestPacketsPipelinedOrSplitKeepTheirOrder: what a device sends reaches
// the broker in order however it is cut: a CONNECT, a SUBSCRIBE and a
// PUBLISH in one write (CONNECT and SUBSCRIBE are handled on goroutines of
// their own, the PUBLISH after them from the same buffer), then a PUBLISH
// larger than the read buffer a few bytes at a time, its header split too,
// and a small one glued to its end. The device gets each back, whole.
func TestPacketsPipelinedOrSplitKeepTheirOrder(t *testing.T) {
	e := startTest(t, Config{ReadBufferSize: 64})
	conn, err := net.Dial("tcp", e.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(hubtest.Timeout))
	topic := "dev/7/cmd"
	publish := func(payload string) []byte {
		return appendLongPacket(nil, 0x30, append(appendString(nil, topic), payload...))
	}

	connect, subscribe := deviceHandshake(7)
	first := publish("first")
	if _, err := conn.Write(bytes.Join([][]byte{connect, subscribe, first}, nil)); err != nil {
		t.Fatal(err)
	}
	want := bytes.Join([][]byte{wantConnack, wantSuback, first}, nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("pipelined: got % x (%v), want % x", got, err, want)
	}

	big := publish(strings.Repeat("0123456789", 50)) // 500 bytes and more: past the 64-byte buffer
	last := publish("last")
	stream := append(append([]byte(nil), big...), last...)
	for i := 0; i < len(stream); i += 37 {
		if _, err := conn.Write(stream[i:min(i+37, len(stream))]); err != nil {
			t.Fatal(err)
		}
	}
	got = make([]byte, len(stream))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, stream) {
		t.Fatalf("split: got %d bytes (%v), want the %d sent back", len(got), err, len(stream))
	}
}
