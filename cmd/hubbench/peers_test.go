package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// The clients of the Go peers against the real servers, when bench/peers.sh
// has built them into the benchmark's cache (it takes minutes, so the tests
// do not build them: they skip, loudly, instead).

// peerBinary is the newest NAME-VERSION binary in the benchmark's cache.
func peerBinary(t *testing.T, name string) string {
	t.Helper()
	cache := os.Getenv("BENCH_CACHE")
	if cache == "" {
		dir := os.Getenv("XDG_CACHE_HOME")
		if dir == "" {
			home, _ := os.UserHomeDir()
			dir = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(dir, "motehub-bench")
	}
	matches, _ := filepath.Glob(filepath.Join(cache, name+"-v*"))
	var bins []string
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			bins = append(bins, m)
		}
	}
	if len(bins) == 0 {
		t.Skipf("!!! %s is not in %s: run bench/peers.sh to build it (minutes, once), then this test runs", name, cache)
	}
	return bins[len(bins)-1]
}

// startPeer starts a peer, stops it when the test ends, waits until addrs
// accept connections, and returns its PID.
func startPeer(t *testing.T, ctx context.Context, bin string, args []string, addrs ...string) int {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(bin), logs.String())
		}
	})
	if err := cmdWait(ctx, append([]string{"-timeout", "15s"}, addrs...)); err != nil {
		t.Fatalf("%s did not start: %v", filepath.Base(bin), err)
	}
	return cmd.Process.Pid
}

// checkFanOut connects subs subscribers of transport at url, publishes 300
// bench payloads through pub, and checks that each subscriber got every
// one of them, once (and in order, unless the publisher sends several at
// once, as Centrifugo's does).
func checkFanOut(t *testing.T, ctx context.Context, transport, url string, pub benchPublisher) {
	t.Helper()
	const subs = 3
	states := make([]*subState, subs)
	readers := make([]subscriber, subs)
	ended := make(chan error, subs)
	for i := range subs {
		states[i] = &subState{index: i, seq: newSeqTracker(1 << 16), sink: &sink{lat: newLatencies(1, 0, 1<<62)}}
		s, err := connectSubscriber(ctx, transport, url, "bench/#", states[i])
		if err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		readers[i] = s
		go func() { ended <- s.read() }()
	}
	defer pub.close()
	if err := pub.ping(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := pub.run(ctx, "bench/t", 3000, 100, start, start.Add(100*time.Millisecond), start, start.Add(time.Hour))
	if err != nil || st.Sent == 0 || st.Sent+st.Behind != 300 {
		t.Fatalf("published %d (behind %d), %v; want 300 in all", st.Sent, st.Behind, err)
	}
	if cp, ok := pub.(*centrifugoPublisher); ok {
		if n, first := cp.failures(); n > 0 {
			t.Fatalf("%d publish requests failed, the first: %s", n, first)
		}
	}
	n := st.Sent
	hubtest.Eventually(t, 10*time.Second, func() bool {
		for _, s := range states {
			if s.sink.messages.Load() < n {
				return false
			}
		}
		return true
	}, "not every subscriber got %d messages", n)
	for i, s := range readers {
		s.close()
		<-ended
		tr := states[i].seq
		_, parallel := pub.(*centrifugoPublisher)
		if tr.received != n || tr.duplicates != 0 || (tr.reordered != 0 && !parallel) || tr.countRange(1, n) != n {
			t.Errorf("subscriber %d: received %d of %d, duplicates %d, reordered %d", i, tr.received, n, tr.duplicates, tr.reordered)
		}
	}
	t.Logf("%d subscribers each got the %d messages published", subs, n)
}

// TestNATSServer runs the NATS WebSocket subscriber and the TCP publisher
// against the real NATS server.
func TestNATSServer(t *testing.T) {
	bin := peerBinary(t, "nats-server")
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	err = os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\nwebsocket {\n  listen: \"127.0.0.1:%d\"\n  no_tls: true\n}\n", ports[0], ports[1]), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pubAddr, wsAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	startPeer(t, ctx, bin, []string{"-c", conf}, pubAddr, wsAddr)
	pub, err := dialNATSPublisher(ctx, pubAddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := runConfig{Transport: transportNATSWS, SubAddr: wsAddr}
	checkFanOut(t, ctx, transportNATSWS, cfg.subURL(), pub)
}

// TestCentrifugo runs the Centrifugo WebSocket subscriber and the HTTP API
// publisher against the real Centrifugo, and checks that a wrong API key
// is reported, not ignored.
func TestCentrifugo(t *testing.T) {
	bin := peerBinary(t, "centrifugo")
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "centrifugo.json")
	err = os.WriteFile(conf, fmt.Appendf(nil, `{"log":{"level":"error"},"http_server":{"address":"127.0.0.1","port":%d},"client":{"insecure":true},"http_api":{"key":"k"},"channel":{"without_namespace":{"allow_subscribe_for_client":true}},"usage_stats":{"disabled":true}}`, ports[0]), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	startPeer(t, ctx, bin, []string{"--config", conf}, addr)

	wrong, err := newCentrifugoPublisher(addr, "not-the-key", 1)
	if err != nil {
		t.Fatal(err)
	}
	wrong.post(ctx, appendCentrifugoPublish(nil, 1, time.Now().UnixNano(), 100))
	wrong.close()
	if n, first := wrong.failures(); n != 1 || !strings.Contains(first, "401") {
		t.Errorf("publish with a wrong key: %d failures, %q; want one, 401", n, first)
	}

	pub, err := newCentrifugoPublisher(addr, "k", 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg := runConfig{Transport: transportCentWS, SubAddr: addr}
	checkFanOut(t, ctx, transportCentWS, cfg.subURL(), pub)
}
