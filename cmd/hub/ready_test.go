package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

var waitingLine = regexp.MustCompile(`level=WARN msg="not ready yet" waiting_for="the upstream broker: connecting to (mqtt://\S+): ([^"]+)"`)

// TestReadyOnlyWhenReady: a hub whose upstream broker is down says what it
// waits for, not "ready", while /readyz answers 503; once the broker is up
// it says "ready" and prints the banner, and /readyz answers 200.
func TestReadyOnlyWhenReady(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	m.Stop()
	h := launchHub(t, "--upstream", m.URL(), "--upstream-linger", linger)
	readyz := func() int {
		status, _, _ := get(t, "GET", "http://"+h.HTTP+"/readyz", nil, "")
		return status
	}

	h.waitFor(t, waitingLine, "saying what it waits for")
	log := h.Log.String()
	w := waitingLine.FindStringSubmatch(log)
	if w[1] != m.URL() || !strings.Contains(w[2], "connection refused") {
		t.Errorf("the waiting line names %s and %q; want %s and the refused connection", w[1], w[2], m.URL())
	}
	if want := "\nmotehub is not ready yet: waiting for the upstream broker: connecting to " + m.URL() + ": "; !strings.Contains(log, want) {
		t.Errorf("the terminal was not told %q:\n%s", want, log)
	}
	if readyLine.MatchString(log) || strings.Contains(log, "motehub is ready") {
		t.Fatalf("the hub says ready with its upstream down:\n%s", log)
	}
	if status := readyz(); status != 503 {
		t.Fatalf("/readyz answers %d with the upstream down, want 503", status)
	}

	m.Restart()
	h.waitFor(t, readyLine, "ready once the upstream is up")
	log = h.Log.String()
	if !strings.Contains(log, "\nmotehub is ready\n") || strings.Index(log, "motehub is ready") < strings.Index(log, "not ready yet") {
		t.Errorf("no banner after the wait:\n%s", log)
	}
	if status := readyz(); status != 200 {
		t.Errorf("/readyz answers %d once the hub said ready, want 200", status)
	}
	if n := len(waitingLine.FindAllString(log, -1)); n > 3 {
		t.Errorf("%d waiting lines in a short wait: at most one per %v", n, waitingLogInterval)
	}
}
