package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/internal/hubtest"
)

// addrs returns the HTTP and MQTT addresses a hub's log announced.
func addrs(log string) (httpAddr, mqttAddr string) {
	for _, m := range listeningLine.FindAllStringSubmatch(log, -1) {
		switch m[1] {
		case "http":
			httpAddr = m[2]
		case "mqtt":
			mqttAddr = m[2]
		}
	}
	return httpAddr, mqttAddr
}

// position is the hub's current event id, from /api/state.
func position(t *testing.T, httpAddr string) (epoch string, seq int) {
	t.Helper()
	_, _, body := get(t, "GET", "http://"+httpAddr+"/api/state?filter=nothing/here", nil, "")
	var st struct{ ID string }
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/state: %s", body)
	}
	i := strings.LastIndexByte(st.ID, '-')
	seq, _ = strconv.Atoi(st.ID[i+1:])
	return st.ID[:i], seq
}

var syncedLine = regexp.MustCompile(`msg="store synced" seq=(\d+)`)

// waitSynced waits until the hub's log says the store has written seq.
func waitSynced(t *testing.T, out *hubtest.LogBuffer, seq int) {
	t.Helper()
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		for _, m := range syncedLine.FindAllStringSubmatch(out.String(), -1) {
			if n, _ := strconv.Atoi(m[1]); n >= seq {
				return true
			}
		}
		return false
	}, "the store never wrote seq %d:\n%s", seq, out)
}

func keeperOptions(addr string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("keeper").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(false).SetConnectTimeout(5 * time.Second)
}

// TestCrashKeepsWhatWasWritten: the real hub, killed with -9 after the
// store wrote its last batch, comes back with the retained messages, a
// persistent session's queued QoS 1 messages, the last values and the
// history; and says resync to a client resuming with an id of before the
// crash, since it cannot know what it gave out afterwards.
func TestCrashKeepsWhatWasWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHub(t)
	data := t.TempDir()
	args := []string{"--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", data, "--data-sync-interval", "100ms", "--log-level", "debug"}
	cmd, out, exited := startProcess(t, bin, args...)
	httpAddr, mqttAddr := addrs(out.String())

	keeper := paho.NewClient(keeperOptions(mqttAddr))
	if tok := keeper.Connect(); !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	hubtest.SubscribeMQTT(t, keeper, "alerts/#", 1)
	keeper.Disconnect(50)
	device := hubtest.ConnectMQTT(t, mqttAddr, "device")
	hubtest.PublishMQTT(t, device, "dev/1/state", 1, true, []byte(`{"on":true}`))
	for i := 1; i <= 3; i++ {
		hubtest.PublishMQTT(t, device, fmt.Sprintf("alerts/%d", i), 1, false, []byte(strconv.Itoa(i)))
	}
	for i := 1; i <= 5; i++ {
		hubtest.PublishMQTT(t, device, "dev/1/temp", 1, false, []byte(fmt.Sprintf("[2%d.5,\"°C\"]", i)))
	}
	// mochi acknowledges before it hands a message on; the device's packets
	// are handled in order, so once the hub has the last one it has them all.
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, _, body := get(t, "GET", "http://"+httpAddr+"/api/state?filter=dev/1/temp", nil, "")
		return strings.Contains(body, `[25.5,"°C"]`)
	}, "the hub never had the last temperature")
	epoch, seq := position(t, httpAddr)
	waitSynced(t, out, seq)
	device.Disconnect(0)

	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no goodbye, no final write
		t.Fatal(err)
	}
	<-exited

	_, out2, _ := startProcess(t, bin, args...)
	httpAddr, mqttAddr = addrs(out2.String())
	reader := hubtest.ConnectMQTT(t, mqttAddr, "reader")
	if m := hubtest.Receive(t, hubtest.SubscribeMQTT(t, reader, "dev/1/state", 1), hubtest.Timeout, "retained"); m.Payload != `{"on":true}` {
		t.Fatalf("the retained message after the crash: %+v", m)
	}
	queued := make(chan string, 10)
	back := paho.NewClient(keeperOptions(mqttAddr).SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { queued <- m.Topic() }))
	if tok := back.Connect(); !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer back.Disconnect(0)
	seen := map[string]bool{}
	for range 3 {
		seen[hubtest.Receive(t, queued, hubtest.Timeout, "a queued message")] = true
	}
	if len(seen) != 3 {
		t.Fatalf("the persistent session got %v after the crash", seen)
	}

	_, _, body := get(t, "GET", "http://"+httpAddr+"/api/state?filter=dev/%23", nil, "")
	if !strings.Contains(body, `"topic":"dev/1/temp","payload":[25.5,"°C"]`) {
		t.Fatalf("last values after the crash: %s", body)
	}
	_, _, body = get(t, "GET", "http://"+httpAddr+"/api/history?topic=dev/1/temp", nil, "")
	var hist struct {
		Values []struct{ Payload json.RawMessage }
	}
	if err := json.Unmarshal([]byte(body), &hist); err != nil || len(hist.Values) != 5 || string(hist.Values[0].Payload) != `[21.5,"°C"]` {
		t.Fatalf("history after the crash: %s", body)
	}
	s := hubtest.DialSSE(t, "http://"+httpAddr+"/events", http.Header{"Last-Event-ID": {fmt.Sprintf("%s-%d", epoch, seq)}})
	for {
		ev, err := s.Next(hubtest.Timeout)
		if err != nil {
			t.Fatalf("no resync for an id of before the crash: %v", err)
		}
		if ev.Event == "resync" {
			break
		}
	}
}

// TestCleanRestartResumes: after SIGTERM the store is complete and marked
// clean; the next run keeps the epoch, and a client resuming with an id
// from before gets exactly what it missed, with no resync.
func TestCleanRestartResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHub(t)
	data := t.TempDir()
	args := []string{"--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", data}
	cmd, out, exited := startProcess(t, bin, args...)
	httpAddr, mqttAddr := addrs(out.String())

	s1 := hubtest.DialSSE(t, "http://"+httpAddr+"/events?filter=m", nil)
	device := hubtest.ConnectMQTT(t, mqttAddr, "device")
	hubtest.PublishMQTT(t, device, "m", 1, false, []byte("1"))
	first := s1.NextMessage(t)
	s1.Close()
	hubtest.PublishMQTT(t, device, "m", 1, false, []byte("2"))
	hubtest.PublishMQTT(t, device, "m", 1, false, []byte("3"))
	device.Disconnect(0)
	// mochi acknowledges a QoS 1 publish before it hands it on: wait until
	// the hub has it, so that the stop comes after it.
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, _, body := get(t, "GET", "http://"+httpAddr+"/api/state?filter=m", nil, "")
		return strings.Contains(body, `"payload":3`)
	}, "the hub never had message 3")

	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, out)
	}

	_, out2, _ := startProcess(t, bin, args...)
	httpAddr, mqttAddr = addrs(out2.String())
	s2 := hubtest.DialSSE(t, "http://"+httpAddr+"/events?filter=m", http.Header{"Last-Event-ID": {first.ID}})
	for _, want := range []string{`["m",2]`, `["m",3]`} {
		if ev := s2.NextMessage(t); ev.Data != want || ev.Event != "" {
			t.Fatalf("resuming across a clean restart: %+v, want %s (no resync)", ev, want)
		}
	}
	device2 := hubtest.ConnectMQTT(t, mqttAddr, "device2")
	hubtest.PublishMQTT(t, device2, "m", 1, false, []byte("4"))
	if ev := s2.NextMessage(t); ev.Data != `["m",4]` {
		t.Fatalf("live after the replay: %s", ev.Data)
	}
}

// TestDataDirectoryProblems: a second hub on the same directory refuses to
// start, naming the problem; so does a directory that cannot be one.
func TestDataDirectoryProblems(t *testing.T) {
	data := t.TempDir()
	startHub(t, "--data", data)
	start := time.Now()
	err := run(t.Context(), []string{"--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", data}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another hub") {
		t.Fatalf("a second hub on %s: %v", data, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("refusing took %v", time.Since(start))
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", file}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("--data naming a file: %v", err)
	}
}
