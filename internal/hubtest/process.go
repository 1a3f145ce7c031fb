package hubtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LogBuffer collects what a program writes, in-process or as a child
// process; safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Reset empties the buffer.
func (b *LogBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// BuildBinary builds the main package of the test's directory into the
// test's temporary directory, as name, for a test that runs it as a process.
func BuildBinary(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// StartProcess starts bin with args in a temporary working directory, its
// output to out. exited yields cmd.Wait's result once it has exited. When
// the test ends, the process is killed (by its PID) if it still runs.
func StartProcess(t testing.TB, bin string, args ...string) (cmd *exec.Cmd, out *LogBuffer, exited <-chan error) {
	t.Helper()
	cmd = exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	out, exited = StartCommand(t, cmd)
	return cmd, out, exited
}

// StartCommand starts cmd, prepared by the caller (its directory,
// environment, standard input), as StartProcess does: its output to out,
// exited yields cmd.Wait's result, and the process is killed (by its PID)
// when the test ends if it still runs.
func StartCommand(t testing.TB, cmd *exec.Cmd) (out *LogBuffer, exited <-chan error) {
	t.Helper()
	out = &LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // ends with the process; the cleanup waits for it
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill() // only the process this test started
			<-done
		}
	})
	return out, done
}

// CommandResult is what a program that ran to its end printed and its exit
// status.
type CommandResult struct {
	Stdout, Stderr string
	Exit           int
}

// RunCommand runs bin with args to its end (at most a minute: then it is
// killed) in a temporary working directory, with stdin as its standard
// input and an environment of this process's without its HUB_ variables,
// plus env ("NAME=value"), so that only what the test gives configures it.
func RunCommand(t testing.TB, bin, stdin string, env []string, args ...string) CommandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUB_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return CommandResult{Stdout: stdout.String(), Stderr: stderr.String(), Exit: cmd.ProcessState.ExitCode()}
}

// StopProcess stops cmd, a child process the test started, by its PID: a
// SIGTERM, then a SIGKILL if it has not exited (exited closed, once its
// cmd.Wait returned) within wait. It returns once the process has exited.
func StopProcess(cmd *exec.Cmd, exited <-chan struct{}, wait time.Duration) {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = cmd.Process.Kill()
	}
	select {
	case <-exited:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-exited
	}
}
