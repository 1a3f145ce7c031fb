package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// netnsEnv marks the copy of the test binary that runs inside its own
// network namespace.
const netnsEnv = "HUBBENCH_TEST_NETNS"

// inNetNS runs the test named name again, alone, inside `unshare --net`
// with loopback up, and reports whether the caller is that copy (and should
// go on). Mosquitto's WebSocket listener binds every address whatever it is
// told, so it only ever runs in a namespace of its own.
func inNetNS(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == "1" {
		return true
	}
	unshare := hubtest.RequireCommand(t, "unshare", "util-linux")
	hubtest.RequireCommand(t, "ip", "iproute2")
	if out, err := exec.Command(unshare, "--net", "true").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("!!! cannot create a network namespace (unshare --net: %v %s): this test needs root", err, bytes.TrimSpace(out))
		if hubtest.RequireAll() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--net", "sh", "-c", `ip link set lo up && exec "$@"`, "sh",
		os.Args[0], "-test.run", "^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a network namespace: %v\n%s", name, err, out)
	}
	t.Logf("in a network namespace:\n%s", out)
	return false
}

// TestMosquittoMQTTOverWebSocket runs the codec and the subscriber against
// the real Mosquitto: CONNECT, SUBSCRIBE, PUBLISH of small and large
// payloads (multi-byte remaining lengths, packets across WebSocket frames),
// PINGREQ.
func TestMosquittoMQTTOverWebSocket(t *testing.T) {
	mosq := hubtest.RequireCommand(t, "mosquitto", "mosquitto")
	if !inNetNS(t, "TestMosquittoMQTTOverWebSocket") {
		return
	}
	pubAddr, wsAddr, _ := startMosquittoWS(t, mosq)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const subs = 3
	states := make([]*subState, subs)
	readers := make([]subscriber, subs)
	ended := make(chan error, subs)
	for i := range subs {
		states[i] = &subState{index: i, seq: newSeqTracker(1 << 16), sink: &sink{lat: newLatencies(1, 0, 1<<62)}}
		s, err := connectSubscriber(ctx, transportMQTTWS, "ws://"+wsAddr+"/mqtt", "bench/#", states[i])
		if err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		readers[i] = s
		go func() { ended <- s.read() }()
		if err := s.ping(); err != nil {
			t.Fatalf("PINGREQ: %v", err)
		}
	}
	pub, err := dialPublisher(ctx, pubAddr, "hubbench-test-pub")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.close()
	if err := pub.ping(); err != nil {
		t.Fatal(err)
	}
	// 500 payloads of 100 bytes, then large ones (3-byte remaining length,
	// several WebSocket frames), and a topic outside the filter.
	start := time.Now()
	st, err := pub.run(ctx, "bench/t", 5000, 100, start, start.Add(100*time.Millisecond), start, start.Add(time.Hour))
	if err != nil || st.Sent == 0 || st.Sent+st.Behind != 500 {
		t.Fatalf("published %d (behind %d), %v; want 500 in all", st.Sent, st.Behind, err)
	}
	n := st.Sent
	big := appendBenchPayload(nil, n+1, time.Now().UnixNano(), 70000)
	other := appendPublish(nil, "elsewhere", []byte("x"))
	pub.wmu.Lock()
	_, _ = pub.bw.Write(appendPublish(nil, "bench/big", big))
	_, _ = pub.bw.Write(other)
	err = pub.bw.Flush()
	pub.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		for _, s := range states {
			if s.sink.messages.Load() < n+1 {
				return false
			}
		}
		return true
	}, "not every subscriber got %d messages", n+1)
	t.Logf("%d subscribers each got %d messages, the last of %d bytes", subs, n+1, len(big))
	for i, s := range readers {
		s.close()
		<-ended
		tr := states[i].seq
		if tr.received != n+1 || tr.duplicates != 0 || tr.reordered != 0 || tr.countRange(1, n+1) != n+1 {
			t.Errorf("subscriber %d: received %d duplicates %d reordered %d", i, tr.received, tr.duplicates, tr.reordered)
		}
	}
}

// TestIngestMosquitto: an ingest run into the real Mosquitto, with the
// dashboards on MQTT over WebSocket (as MQTT.js), delivers every window
// message to every dashboard and measures Mosquitto's CPU.
func TestIngestMosquitto(t *testing.T) {
	mosq := hubtest.RequireCommand(t, "mosquitto", "mosquitto")
	if !inNetNS(t, "TestIngestMosquitto") {
		return
	}
	pubAddr, wsAddr, pid := startMosquittoWS(t, mosq)
	cfg := ingestConfig{
		Target: "mosquitto", SubAddr: wsAddr, PubAddr: pubAddr, PID: strconv.Itoa(pid),
		Devices: 40, Dashboards: 2, Rate: 400, Payload: 100, Topics: "ingest/dev%d/data", Filter: "#",
		Transport: transportMQTTWS, Senders: 3,
		Warmup: 300 * time.Millisecond, Measure: time.Second, Settle: 100 * time.Millisecond,
		MaxDrain: 2 * time.Second, Parallel: 8,
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := runIngest(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if res.DevicesConnected != 40 || res.DashboardsConnected != 2 {
		t.Fatalf("%d devices and %d dashboards connected, want 40 and 2", res.DevicesConnected, res.DashboardsConnected)
	}
	if res.WindowMessages < 300 || res.Expected != 2*res.WindowMessages || res.Delivered != res.Expected {
		t.Errorf("delivered %d of %d (%d in the window); want all of about 800", res.Delivered, res.Expected, res.WindowMessages)
	}
	if res.CPUUsPerMessage <= 0 {
		t.Errorf("%.1f µs of Mosquitto's CPU per message", res.CPUUsPerMessage)
	}
}

// startMosquittoWS starts Mosquitto (the program at mosq) with an MQTT
// listener and a WebSocket one on loopback, waits until both accept, and
// returns their addresses and its PID; the test's cleanup stops it. Call it
// only inside inNetNS.
func startMosquittoWS(t *testing.T, mosq string) (pubAddr, wsAddr string, pid int) {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	err = os.WriteFile(conf, fmt.Appendf(nil, "allow_anonymous true\npersistence false\nlistener %d 127.0.0.1\nlistener %d 127.0.0.1\nprotocol websockets\n", ports[0], ports[1]), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	pubAddr, wsAddr = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return pubAddr, wsAddr, startPeer(t, ctx, mosq, []string{"-c", conf}, pubAddr, wsAddr)
}
