package broker

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/cputime"
	"github.com/motehub/motehub/internal/hubtest"
)

// BenchmarkDeviceIngest: what the broker costs per QoS 0 PUBLISH that a
// device sends, from the socket to the hub's subscription (which does
// nothing with it): mochi's read path, its hooks (ACL, message rate), the
// topic index, the inline delivery. 200 devices, each on its own topic,
// take turns, so that each read finds one packet, as at ingest. Reported:
// cpu-ns/op, the CPU of the whole process (the devices' writes included,
// the same before and after a change to the broker) per message.
//
//	go test ./broker -run '^$' -bench DeviceIngest -count 8
func BenchmarkDeviceIngest(b *testing.B) {
	const devices = 200
	e := startTest(b, Config{
		MaxConnections: 2 * devices, MaxConnectionsPerAddress: 2 * devices,
		MessageRate: 1e9, // checked on every PUBLISH, never reached
	})
	var received atomic.Int64
	cancel, err := e.Subscribe("#", func(bridge.Message) { received.Add(1) })
	if err != nil {
		b.Fatal(err)
	}
	defer cancel()

	conns := make([]*mqttConn, devices)
	publishes := make([][]byte, devices)
	pad := strings.Repeat("x", 60)
	for i := range conns {
		conns[i] = dialMQTTConn(b, e.Addr().String(), fmt.Sprintf("ingest-%d", i))
		var buf bytes.Buffer
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish},
			ProtocolVersion: 4,
			TopicName:       fmt.Sprintf("bench/dev%d/data", i),
			Payload:         fmt.Appendf(nil, `{"s":%d,"t":1764000000000000000,"p":"%s"}`, i, pad),
		}
		if err := pk.PublishEncode(&buf); err != nil {
			b.Fatal(err)
		}
		publishes[i] = buf.Bytes()
	}
	send := func(n int) {
		base := received.Load()
		for i := range n {
			if _, err := conns[i%devices].conn.Write(publishes[i%devices]); err != nil {
				b.Fatal(err)
			}
		}
		hubtest.Eventually(b, time.Minute, func() bool { return received.Load() >= base+int64(n) },
			"the hub took %d of %d messages", received.Load()-base, n)
	}
	send(4 * devices)
	b.ReportAllocs()
	cpu := cputime.Process(b)
	b.ResetTimer()
	send(b.N)
	b.StopTimer()
	b.ReportMetric(float64(cputime.Process(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkPublishFromADevice: the broker's share of a device's QoS 0
// PUBLISH once it is read (mochi's processing, the hook's ACL and message
// rate, the topic index, the hub's inline subscription), without the
// socket: steady enough for instruction counts (callgrind).
//
//	go test ./broker -run '^$' -bench PublishFromADevice -benchmem
func BenchmarkPublishFromADevice(b *testing.B) {
	e := startTest(b, Config{MessageRate: 1e12})
	cancel, err := e.Subscribe("#", func(bridge.Message) {})
	if err != nil {
		b.Fatal(err)
	}
	defer cancel()
	cl := e.server.NewClient(nil, "mqtt", "bench-device", false)
	cl.Properties.ProtocolVersion = 4
	cl.State.Inflight.ResetReceiveQuota(65535) // as at CONNECT
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   "bench/dev17/data",
		Payload:     []byte(`{"s":17,"t":1764000000000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`),
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.server.InjectPacket(cl, pk); err != nil {
			b.Fatal(err)
		}
	}
}
