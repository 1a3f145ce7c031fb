package hubtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// nodeMajor is the oldest Node.js motehub.js promises to work with.
const nodeMajor = 20

// Node is a Node.js the tests may run: its path, and the flags every run
// needs (on Node 20, --experimental-websocket: the global WebSocket is
// there from Node 22 on).
type Node struct {
	Path  string
	Flags []string
	// ForceExit says whether node --test takes --test-force-exit (Node
	// 20.14 and later): a test file's process then exits once its tests
	// have ended, even if something still holds its event loop.
	ForceExit bool
}

// RequireNode returns Node.js 20 or later. When node is missing, or older,
// or gives no WebSocket even with the flag, the test is skipped loudly, or
// fails under HUB_REQUIRE_ALL=1 (see [RequireCommand]).
func RequireNode(t testing.TB) Node {
	t.Helper()
	n := Node{Path: RequireCommand(t, "node", "nodejs")}
	out, err := exec.Command(n.Path, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	version := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if m, err := strconv.Atoi(major); err != nil || m < nodeMajor {
		missing(t, fmt.Sprintf("!!! node is %s, so this test cannot run: motehub.js needs Node.js %d or later (Debian 13's nodejs, or nodejs.org).", version, nodeMajor))
	}
	for _, flags := range [][]string{nil, {"--experimental-websocket"}} {
		out, err := exec.Command(n.Path, append(flags, "-p", "typeof WebSocket")...).Output()
		if err == nil && strings.TrimSpace(string(out)) == "function" {
			n.Flags = flags
			n.ForceExit = exec.Command(n.Path, "--test-force-exit", "-e", "0").Run() == nil
			return n
		}
	}
	missing(t, fmt.Sprintf("!!! node %s has no WebSocket, even with --experimental-websocket, so this test cannot run: install Node.js 20.10 or later.", version))
	return n
}

// typescriptDir holds the npm package typescript, pinned (make test
// installs it): 5.9, the last release written in JavaScript (7 is a native
// program per platform).
const typescriptDir = "internal/hubtest/testdata/typescript"

// TypeScript returns the path of tsc (a script for node) at the version
// internal/hubtest/testdata/typescript pins, checked as [MQTTJS] is.
func TypeScript(t testing.TB) string {
	t.Helper()
	return filepath.Join(pinnedPackage(t, typescriptDir, "typescript", "TypeScript"), "bin", "tsc")
}
