package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/web"
)

// The wait for readiness: the hub says "ready" only once /readyz would
// answer 200. Until then it says, after a short grace (an upstream broker
// takes a moment to connect), what it waits for, again when that changes,
// at most once per waitingLogInterval.
const (
	readyPollInterval  = 100 * time.Millisecond
	waitingGrace       = time.Second
	waitingLogInterval = 5 * time.Second
)

// waitingFor is what the failing checks wait for, in a person's words, or
// "" when every check passes. what names a check's part ("the upstream
// broker"); a check it does not know is named by its own name.
func waitingFor(checks []web.Check, what map[string]string) string {
	var parts []string
	for _, c := range checks {
		if c.Degraded {
			continue // said, never waited for
		}
		err := c.Ready()
		if err == nil {
			continue
		}
		name := what[c.Name]
		if name == "" {
			name = c.Name
		}
		// The upstream's errors all start "upstream unavailable: ", which
		// the name says already.
		reason := err.Error()
		if errors.Is(err, broker.ErrUnavailable) {
			reason = strings.TrimPrefix(reason, broker.ErrUnavailable.Error()+": ")
		}
		parts = append(parts, name+": "+reason)
	}
	return strings.Join(parts, "; ")
}

// awaitReady returns true once every check passes, or false when ctx ends
// or the HTTP server fails first (hs.waitForEnd then says which). While it
// waits it logs what for, and in text format tells the terminal too.
func awaitReady(ctx context.Context, hs *httpServer, checks []web.Check, what map[string]string, textOut io.Writer, log *slog.Logger) bool {
	start := time.Now()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	var said string // what the last line said
	var saidAt time.Time
	for {
		reason := waitingFor(checks, what)
		if reason == "" {
			return true
		}
		if now := time.Now(); reason != said && now.Sub(start) >= waitingGrace && now.Sub(saidAt) >= waitingLogInterval {
			log.Warn("not ready yet", "waiting_for", reason)
			if textOut != nil {
				fmt.Fprintf(textOut, "\nmotehub is not ready yet: waiting for %s\n\n", reason)
			}
			said, saidAt = reason, now
		}
		select {
		case <-ctx.Done():
			return false
		case err := <-hs.serveErr:
			hs.serveErr <- err // for waitForEnd and wait
			return false
		case <-tick.C:
		}
	}
}
