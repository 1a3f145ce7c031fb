//go:build unix

package main

import (
	"fmt"
	"log/slog"
	"syscall"
)

// filesKept is how many of the hub's open files are not connections: its
// listeners, its store's files, its logs, with room to spare.
const filesKept = 100

// openFileLimit is the process's limit on open files, as raised to the hard
// limit by raiseOpenFileLimit.
type openFileLimit struct {
	soft, hard uint64
}

// connections is how many connections (MQTT devices, browser sessions)
// the limit leaves room for: each holds one socket.
func (l openFileLimit) connections() uint64 {
	if l.soft <= filesKept {
		return 0
	}
	return l.soft - filesKept
}

// raiseOpenFileLimit raises the soft limit on open files to the hard one:
// every connection holds a socket, and a soft limit of 1,024 (a common
// default) would refuse the 1,000th device. Go's runtime does the same at
// start on Linux; this makes it explicit, and reads the result.
func raiseOpenFileLimit() (openFileLimit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return openFileLimit{}, fmt.Errorf("read the open files limit: %w", err)
	}
	if rl.Cur < rl.Max {
		raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return openFileLimit{soft: rl.Cur, hard: rl.Max}, fmt.Errorf("raise the open files limit from %d to %d: %w", rl.Cur, rl.Max, err)
		}
		rl = raised
	}
	return openFileLimit{soft: rl.Cur, hard: rl.Max}, nil
}

// logOpenFileLimit raises the open files limit and says, once, how many
// connections it allows, with a warning when a --max-connections given
// asks for more than that (the default's excess is in the INFO line: a
// warning at every start of a small machine would teach people to ignore
// warnings).
func logOpenFileLimit(log *slog.Logger, maxConnections int, given bool) {
	limit, err := raiseOpenFileLimit()
	if err != nil {
		log.Warn("open files", "err", err)
	}
	if limit.hard == 0 {
		return
	}
	log.Info("open files", "limit", limit.soft, "hard_limit", limit.hard, "connections", limit.connections(), "max_connections", maxConnections)
	if given && uint64(maxConnections) > limit.connections() {
		log.Warn("--max-connections is more than the open files limit allows: the hub cannot hold that many connections",
			"max_connections", maxConnections, "connections", limit.connections(), "limit", limit.soft)
	}
}
