package main

import (
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// The lines of package refusals, in text logs.
var (
	warnLine    = regexp.MustCompile(`(?m)^time=\S+ level=WARN .*$`)
	refusedLine = regexp.MustCompile(`(?m)^time=\S+ level=WARN msg=refused .*$`)
	summaryLine = regexp.MustCompile(`(?m)^time=\S+ level=WARN msg="\.\.\. and (\d+) more from (\S+) in the last minute".*$`)
)

// startRefusingHub runs the hub binary with a users file and returns its
// MQTT and HTTP addresses.
func startRefusingHub(t *testing.T) (cmd *exec.Cmd, out *hubtest.LogBuffer, exited <-chan error, mqttAddr, httpAddr string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	users, _ := writeUsers(t, false)
	cmd, out, exited = startProcess(t, buildHub(t), "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", "", "--users", users)
	for _, l := range listeningLine.FindAllStringSubmatch(out.String(), -1) {
		switch l[1] {
		case "mqtt":
			mqttAddr = l[2]
		case "http":
			httpAddr = l[2]
		}
	}
	if mqttAddr == "" || httpAddr == "" {
		t.Fatalf("no listening lines:\n%s", out)
	}
	return cmd, out, exited, mqttAddr, httpAddr
}

// stopHub stops the hub as a service manager would, so that every line it
// has to write is written.
func stopHub(t *testing.T, cmd *exec.Cmd, out *hubtest.LogBuffer, exited <-chan error) string {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("hub exited with %v\n%s", err, out)
		}
	case <-time.After(hubtest.Timeout):
		t.Fatalf("hub still running after SIGTERM\n%s", out)
	}
	return out.String()
}

// connectFrom connects a paho client with user and password and reports
// the local address it connected from.
func connectFrom(addr, clientID, user, password string) (local string, err error) {
	locals := make(chan string, 1)
	c, err := hubtest.ConnectMQTTWith("tcp://"+addr, clientID, user, password, func(o *paho.ClientOptions) {
		o.SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", uri.Host, hubtest.Timeout)
			if err == nil {
				locals <- conn.LocalAddr().String()
			}
			return conn, err
		})
	})
	if c != nil {
		c.Disconnect(0)
	}
	select {
	case local = <-locals:
	default:
	}
	return local, err
}

// TestRefusedConnectIsOneWarning: a real client with a wrong password is
// refused, and the hub says so at the default level in one WARN line, with
// the client's address and user, the reason and the code; not the password.
func TestRefusedConnectIsOneWarning(t *testing.T) {
	cmd, out, exited, mqttAddr, _ := startRefusingHub(t)
	const password = "not-alices-password"
	local, err := connectFrom(mqttAddr, "wrong-password", "alice", password)
	if err == nil || local == "" {
		t.Fatalf("CONNECT with a wrong password: %v (from %q), want refused", err, local)
	}
	log := stopHub(t, cmd, out, exited)
	want := `level=WARN msg=refused door=mqtt remote=` + local + ` user=alice reason="wrong user name, password or token" ` +
		`client=wrong-password code="0x86 bad username or password"`
	if lines := warnLine.FindAllString(log, -1); len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Fatalf("WARN lines %q, want exactly one with\n%s\nlog:\n%s", lines, want, log)
	}
	if strings.Contains(log, password) {
		t.Fatalf("the password is in the log:\n%s", log)
	}
}

// TestFloodOfRefusedConnectsIsSummarised: 500 wrong CONNECTs from one
// address write a few lines and a summary that counts the rest.
func TestFloodOfRefusedConnectsIsSummarised(t *testing.T) {
	cmd, out, exited, mqttAddr, _ := startRefusingHub(t)
	const flood = 500
	before := strings.Count(out.String(), "\n")
	for i := range flood {
		if _, err := connectFrom(mqttAddr, "flood-"+strconv.Itoa(i), "alice", "wrong-password"); err == nil {
			t.Fatalf("CONNECT %d accepted", i)
		}
	}
	log := stopHub(t, cmd, out, exited)
	refused := refusedLine.FindAllString(log, -1)
	counted := 0
	for _, m := range summaryLine.FindAllStringSubmatch(log, -1) {
		if m[2] != "127.0.0.1" {
			t.Errorf("summary of %s", m[2])
		}
		n, _ := strconv.Atoi(m[1])
		counted += n
	}
	// Five lines a minute, and the summaries: one within a minute.
	if len(refused) > 10 || counted == 0 || len(refused)+counted != flood {
		t.Fatalf("%d refusal lines and %d counted in summaries, want at most 10 and %d in all:\n%s", len(refused), counted, flood, log)
	}
	if lines := strings.Count(log, "\n") - before; lines > 30 {
		t.Fatalf("%d lines for %d refused CONNECTs:\n%s", lines, flood, log)
	}
	t.Logf("%d refused CONNECTs: %d refusal lines, summaries counting %d", flood, len(refused), counted)
}

// TestCrossOriginWebSocketIsOneWarning: a page of another origin opening
// the WebSocket is refused (403) with one WARN line.
func TestCrossOriginWebSocketIsOneWarning(t *testing.T) {
	cmd, out, exited, _, httpAddr := startRefusingHub(t)
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+httpAddr+"/ws", http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin WebSocket: %v, want 403", err)
	}
	log := stopHub(t, cmd, out, exited)
	want := regexp.MustCompile(`level=WARN msg=refused door=websocket remote=127\.0\.0\.1:\d+ ` +
		`reason="pages from https://evil.example may not use this hub \(see --allow-origin\)" status=403$`)
	if lines := warnLine.FindAllString(log, -1); len(lines) != 1 || !want.MatchString(lines[0]) {
		t.Fatalf("WARN lines %q, want exactly one matching %s; log:\n%s", lines, want, log)
	}
}

// TestRefusedMQTTOverWebSocketIsOneWarning: a CONNECT over /mqtt with a
// wrong password is one WARN line at the mqtt-ws door.
func TestRefusedMQTTOverWebSocketIsOneWarning(t *testing.T) {
	users, _ := writeUsers(t, false)
	h := startHub(t, "--users", users)
	const password = "not-alices-password"
	if c, err := hubtest.ConnectMQTTWebSocket("ws://"+h.HTTP+"/mqtt", "ws-wrong", "alice", password, nil); err == nil {
		c.Disconnect(0)
		t.Fatal("CONNECT over WebSocket with a wrong password accepted")
	}
	want := regexp.MustCompile(`level=WARN msg=refused door=mqtt-ws remote=127\.0\.0\.1:\d+ user=alice ` +
		`reason="wrong user name, password or token" client=ws-wrong code="0x86 bad username or password"$`)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(warnLine.FindAllString(h.Log.String(), -1)) > 0 },
		"no WARN line:\n%s", h.Log)
	if lines := warnLine.FindAllString(h.Log.String(), -1); len(lines) != 1 || !want.MatchString(lines[0]) {
		t.Fatalf("WARN lines %q, want exactly one matching %s", lines, want)
	}
	if strings.Contains(h.Log.String(), password) {
		t.Fatalf("the password is in the log:\n%s", h.Log)
	}
}
