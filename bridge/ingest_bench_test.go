package bridge_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// BenchmarkIngest: what one device message costs from the MQTT socket to
// the hub's fan-out (mochi's read and publish path, the broker's hooks, the
// Bus callback, the event log, the last values, the device model's queue),
// with 200 devices publishing QoS 0 to their own topics and no browser.
// ns/op is wall time per message on the hub's side with the benchmark's
// writes; allocs/op and B/op, every goroutine's, are what the neighbours
// on a shared machine do not change. (The device model's worker applies
// the messages behind the fan-out; what it has not yet applied when the
// last message is counted is not in the numbers.)
func BenchmarkIngest(b *testing.B) {
	const devices = 200
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bk, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Logger: log, MessageRate: -1,
		MaxConnections: 2 * devices, MaxConnectionsPerAddress: 2 * devices})
	if err != nil {
		b.Fatal(err)
	}
	hub, err := bridge.New(bk, bridge.Config{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	bk.Open()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.Close(ctx)
		_ = bk.Close(ctx)
	})

	conns := make([]net.Conn, devices)
	packets := make([][]byte, devices)
	pad := strings.Repeat("x", 60)
	for i := range conns {
		conns[i] = dialDevice(b, bk.Addr().String(), fmt.Sprintf("bench-dev-%d", i))
		packets[i] = publishPacket(fmt.Sprintf("bench/dev%d/data", i), fmt.Appendf(nil, `{"s":%d,"t":1764000000000000000,"p":"%s"}`, i, pad))
	}
	send := func(n int) {
		base := hub.Stats().Received
		for i := range n {
			if _, err := conns[i%devices].Write(packets[i%devices]); err != nil {
				b.Fatal(err)
			}
		}
		hubtest.Eventually(b, time.Minute, func() bool { return hub.Stats().Received >= base+uint64(n) },
			"the hub took %d of %d messages", hub.Stats().Received-base, n)
	}
	send(4 * devices) // every device known to the model
	b.ReportAllocs()
	b.ResetTimer()
	send(b.N)
}

// dialDevice connects an MQTT 3.1.1 client (clean session, no credentials)
// and returns once its CONNACK has come.
func dialDevice(b *testing.B, addr, id string) net.Conn {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60}
	body = binary.BigEndian.AppendUint16(body, uint16(len(id)))
	body = append(body, id...)
	if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		b.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		b.Fatalf("CONNACK %x: %v", ack, err)
	}
	return conn
}

// publishPacket is a QoS 0 PUBLISH (remaining length below 16 KiB).
func publishPacket(topic string, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	p := []byte{0x30, byte(n&0x7f | 0x80), byte(n >> 7)}
	p = binary.BigEndian.AppendUint16(p, uint16(len(topic)))
	p = append(p, topic...)
	return append(p, payload...)
}
