package main

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestMosquittoClients drives the hub with the real mosquitto_pub and
// mosquitto_sub, as the README's demo does.
func TestMosquittoClients(t *testing.T) {
	pub := hubtest.RequireCommand(t, "mosquitto_pub", "mosquitto-clients")
	sub := hubtest.RequireCommand(t, "mosquitto_sub", "mosquitto-clients")
	h := startHub(t)
	host, port, _ := net.SplitHostPort(h.MQTT)

	// Device → browser: mosquitto_pub's message arrives as a frame.
	ws, _ := h.session(t, "/ws", `{}`)
	out, err := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", "nodes/bridge/0/thermometer/0:1/temperature", "-m", `[21.5, "°C"]`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	if f := ws.Expect("nodes/bridge/0/thermometer/0:1/temperature"); string(f.Payload) != `[21.5,"°C"]` {
		t.Fatalf("browser got %s", f.Payload)
	}

	// Browser → device: a command from the WebSocket reaches mosquitto_sub.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// stdbuf: mosquitto_sub's stdout is a pipe here, and fully buffered it
	// would print the SUBACK line only when it exits.
	stdbuf := hubtest.RequireCommand(t, "stdbuf", "coreutils")
	cmd := exec.CommandContext(ctx, stdbuf, "-oL", sub, "-h", host, "-p", port, "-q", "1", "-v", "-d", "-C", "1", "-t", "nodes/bridge/0/relay/+/set")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitFor := func(pattern string) string {
		t.Helper()
		re := regexp.MustCompile(pattern)
		for {
			line, ok := <-lines
			if !ok {
				t.Fatalf("mosquitto_sub ended before printing %q", pattern)
			}
			if re.MatchString(line) {
				return line
			}
		}
	}
	waitFor(`received SUBACK`) // -d prints the broker's answer: now the subscription is live

	mounted, _ := h.session(t, "/ws/nodes/bridge/0", `{}`)
	mounted.Send(`["relay/i2c0-3b/set", {"state": false}]`)
	if got := waitFor(`^nodes/`); got != `nodes/bridge/0/relay/i2c0-3b/set {"state":false}` {
		t.Fatalf("mosquitto_sub printed %q", got)
	}
	for range lines { // let the reader finish before Wait closes the pipe
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
}

// TestSIGTERMDrainsAndExitsZero builds the real binary, runs it, and stops it
// as a service manager would: it must close browsers with "going away" and
// exit 0 within 10 seconds. On the way, starts that cannot work must exit 1.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHub(t)
	cmd, out, exited := startProcess(t, bin, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0")
	var httpAddr string
	for _, l := range listeningLine.FindAllStringSubmatch(out.String(), -1) {
		if l[1] == "http" {
			httpAddr = l[2]
		}
	}

	// What a service manager sees when a start fails: exit status 1 (2 for
	// a usage mistake) and one line on standard error that says why.
	for _, c := range []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"--http", httpAddr, "--mqtt", "127.0.0.1:0", "--data", ""}, 1, "hub: listen for HTTP on " + httpAddr},
		{[]string{"--users", "/no/such/users.toml", "--data", ""}, 1, "/no/such/users.toml"},
		{[]string{"--log-format", "xml"}, 2, "want text or json"},
	} {
		second := exec.Command(bin, c.args...)
		second.Dir = t.TempDir()
		var stderr strings.Builder
		second.Stderr = &stderr
		err := second.Run()
		if code := second.ProcessState.ExitCode(); code != c.exit || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("hub %v: exit %d (%v), stderr %q; want exit %d and %q", c.args, code, err, stderr.String(), c.exit, c.want)
		}
	}
	if v, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(v), "motehub ") {
		t.Errorf("hub version: %q %v", v, err)
	}
	ws := hubtest.DialWS(t, "ws://"+httpAddr+"/ws", nil)
	ws.Send(`["clown.talk/-/config/set", {}]`)
	ws.Expect("clown.talk/-/config/ok")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Read while the hub drains, so the close handshake completes promptly.
	_, readErr := ws.TryReadLine(hubtest.Timeout)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("hub exited with %v after SIGTERM\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("hub still running 10 s after SIGTERM\n%s", out)
	}
	t.Logf("exit 0 %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !websocket.IsCloseError(readErr, websocket.CloseGoingAway) {
		t.Fatalf("browser saw %v, want close 1001 going away", readErr)
	}
	if !strings.Contains(out.String(), "msg=stopped") {
		t.Fatalf("no 'stopped' line:\n%s", out)
	}
}

// buildHub builds the hub binary for a test that runs it as a process.
func buildHub(t *testing.T) string { return hubtest.BuildBinary(t, "hub") }

// startProcess runs the hub binary with args, in a temporary working
// directory (where its default ./hub-data goes), and waits for "ready"; it
// is killed (by its PID) if the test ends before it exits.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, *hubtest.LogBuffer, <-chan error) {
	t.Helper()
	cmd, out, exited := hubtest.StartProcess(t, bin, args...)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return strings.Contains(out.String(), "msg=ready") },
		"hub binary not ready:\n%s", out)
	return cmd, out, exited
}
