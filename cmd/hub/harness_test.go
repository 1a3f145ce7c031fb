package main

import (
	"context"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/motehub/motehub/internal/hubtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runningHub is a whole hub started in-process by run, on free loopback ports.
type runningHub struct {
	HTTP string // host:port
	MQTT string // host:port
	Log  *hubtest.LogBuffer

	cancel context.CancelFunc
	done   chan error
	err    error
	once   sync.Once
}

// listeningLine finds the listening lines in text or JSON logs.
var (
	listeningLine = regexp.MustCompile(`msg=listening proto=(\w+) addr=(\S+)|"msg":"listening","proto":"(\w+)","addr":"([^"]+)"`)
	readyLine     = regexp.MustCompile(`msg=ready|"msg":"ready"`)
)

// startHub runs the hub with args after "--http 127.0.0.1:0 --mqtt
// 127.0.0.1:0 --data ”" (only the first with --upstream), waits for its
// "ready" line, and stops it when the test ends.
func startHub(t testing.TB, args ...string) *runningHub {
	t.Helper()
	h := launchHub(t, args...)
	h.waitFor(t, readyLine, "ready")
	return h
}

// launchHub is startHub without the wait for "ready": it waits only for
// the HTTP listening line.
func launchHub(t testing.TB, args ...string) *runningHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &runningHub{Log: &hubtest.LogBuffer{}, cancel: cancel, done: make(chan error, 1)}
	all := []string{"--http", "127.0.0.1:0"}
	if !slices.Contains(args, "--upstream") {
		all = append(all, "--mqtt", "127.0.0.1:0", "--data", "")
	}
	all = append(all, args...)
	go func() { h.done <- run(ctx, all, h.Log) }()
	t.Cleanup(func() {
		if err := h.Stop(); err != nil {
			t.Errorf("hub stopped with an error: %v", err)
		}
		if t.Failed() {
			t.Logf("hub log:\n%s", h.Log.String())
		}
	})
	h.waitFor(t, httpListeningLine, "listening on HTTP")
	return h
}

var httpListeningLine = regexp.MustCompile(`msg=listening proto=https? |"msg":"listening","proto":"https?"`)

// waitFor waits for a line of the log that matches re (what says which),
// failing the test if the hub exits first, then notes the listeners'
// addresses.
func (h *runningHub) waitFor(t testing.TB, re *regexp.Regexp, what string) {
	t.Helper()
	var early error
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		select {
		case early = <-h.done:
			h.once.Do(func() { h.err = early })
			t.Fatalf("hub exited before %s: %v\n%s", what, early, h.Log.String())
		default:
		}
		return re.MatchString(h.Log.String())
	}, "hub not %s; log:\n%s", what, h.Log)
	for _, m := range listeningLine.FindAllStringSubmatch(h.Log.String(), -1) {
		proto, addr := m[1]+m[3], m[2]+m[4]
		switch proto {
		case "http", "https":
			h.HTTP = addr
		case "mqtt":
			h.MQTT = addr
		}
	}
	if h.HTTP == "" {
		t.Fatalf("no HTTP listening line in the log:\n%s", h.Log.String())
	}
}

// Stop cancels the hub's context and waits for run to return (at most 15 s).
func (h *runningHub) Stop() error {
	h.once.Do(func() {
		h.cancel()
		select {
		case h.err = <-h.done:
		case <-time.After(15 * time.Second):
			h.err = context.DeadlineExceeded
		}
	})
	return h.err
}

func (h *runningHub) wsURL(path string) string { return "ws://" + h.HTTP + path }

// session opens a WebSocket on path and starts a Clown.Talk session with
// config, returning the client and the config/ok payload.
func (h *runningHub) session(t *testing.T, path, config string) (*hubtest.WS, hubtest.Frame) {
	t.Helper()
	ws := hubtest.DialWS(t, h.wsURL(path), nil)
	ws.Send(`["clown.talk/-/config/set", ` + config + `]`)
	return ws, ws.Expect("clown.talk/-/config/ok")
}
