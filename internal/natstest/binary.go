package natstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// Version is the nats-server the tests run: the one internal/natstest/tool's
// go.mod requires (TestToolPinsVersion keeps the two equal).
const Version = "v2.15.3"

// serverPackage is the main package built from the tool module.
const serverPackage = "github.com/nats-io/nats-server/v2"

// buildTimeout bounds one build (the first, with an empty module cache,
// downloads the server's modules from the proxy) and the wait for another
// process's build.
const buildTimeout = 10 * time.Minute

var built struct {
	mu   sync.Mutex
	path string // set once a build (or the cache) gave a working binary
}

// Binary returns the path of nats-server [Version], built once per machine
// into the cache directory ($HUB_CACHE_DIR, else the user's cache directory
// and motehub) under a lock, so that test packages running in parallel
// build it once. Without a go tool, or when the build fails (no module
// proxy), the test is skipped loudly, or fails under HUB_REQUIRE_ALL=1.
func Binary(t testing.TB) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.path != "" {
		return built.path
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		missing(t, "!!! the go tool is not in PATH, so nats-server cannot be built for this test.")
	}
	dir, err := cacheDir()
	if err != nil {
		t.Fatalf("nats-server's cache directory: %v", err)
	}
	path, err := buildCached(goTool, filepath.Join(hubtest.ModuleRoot(t), "internal", "natstest", "tool"), dir)
	if err != nil {
		missing(t, fmt.Sprintf("!!! nats-server %s could not be built, so this test cannot run (it needs the Go module proxy once; `make test-deps` builds it ahead): %v", Version, err))
	}
	built.path = path
	return path
}

// cacheDir is where built programs are kept: $HUB_CACHE_DIR, else the
// user's cache directory and motehub.
func cacheDir() (string, error) {
	if dir := os.Getenv("HUB_CACHE_DIR"); dir != "" {
		return dir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no HUB_CACHE_DIR and no user cache directory: %w", err)
	}
	return filepath.Join(dir, "motehub"), nil
}

// buildCached returns the path of the server in dir, building it from the
// module in toolDir first unless a working one is there. The build goes to
// a temporary name and is renamed into place, under a lock file in dir, so
// that concurrent callers (other test processes) build it once and never
// run a half-written file.
func buildCached(goTool, toolDir, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("nats-server-%s-%s-%s", Version, runtime.GOOS, runtime.GOARCH)
	path := filepath.Join(dir, name)
	if checkVersion(path) == nil {
		return path, nil
	}
	unlock, err := lockFile(path+".lock", buildTimeout)
	if err != nil {
		return "", err
	}
	defer unlock()
	if checkVersion(path) == nil { // another process built it meanwhile
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, name+".build-*")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name()) // gone once renamed
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", tmp.Name(), serverPackage)
	cmd.Dir = toolDir
	cmd.Env = append(os.Environ(), "GOWORK=off") // the tool module alone, not a go.work around it
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", serverPackage, toolDir, err, out)
	}
	if err := checkVersion(tmp.Name()); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// checkVersion runs the server at path with --version and checks that it
// is [Version].
func checkVersion(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w", path, err)
	}
	if got := strings.TrimSpace(string(out)); got != "nats-server: "+Version {
		return fmt.Errorf("%s --version says %q, want nats-server: %s", path, got, Version)
	}
	return nil
}

// missing skips the test with msg, or fails it under HUB_REQUIRE_ALL=1.
func missing(t testing.TB, msg string) {
	t.Helper()
	if hubtest.RequireAll() {
		t.Fatal(msg + " (HUB_REQUIRE_ALL=1: missing dependencies fail)")
	}
	t.Skip(msg)
}

// errLockTimeout: another process held the build lock for too long.
var errLockTimeout = errors.New("timed out waiting for another build of nats-server")

// boundedOutput keeps the last limit bytes written to it: a server's log,
// shown when a test fails. Safe for concurrent use.
type boundedOutput struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (b *boundedOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		// Drop whole lines from the front when there is one to cut at.
		cut := over
		if i := bytes.IndexByte(b.buf[over:], '\n'); i >= 0 {
			cut = over + i + 1
		}
		b.buf = append(b.buf[:0], b.buf[cut:]...)
	}
	return len(p), nil
}

func (b *boundedOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
