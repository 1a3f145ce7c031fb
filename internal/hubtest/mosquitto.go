package hubtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mosquitto is a real Mosquitto broker started for one test: anonymous,
// without persistence, listening on a free port of 127.0.0.1 only (never
// another address), publishing its $SYS topics every second, and logging to
// a file in the test's temporary directory. It is stopped, by its PID, when
// the test ends.
//
// Stop and Restart let a test take the broker away and bring it back on the
// same port. The methods are safe for concurrent use.
type Mosquitto struct {
	t     testing.TB
	path  string   // the mosquitto program
	dir   string   // its config, log and output
	addr  string   // 127.0.0.1:port
	extra []string // configuration lines the test added

	mu   sync.Mutex
	proc *mosquittoProc // nil while stopped
}

// mosquittoProc is one run of the broker.
type mosquittoProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
}

// mosquittoDirs are where Debian and others put daemons, outside a user's PATH.
var mosquittoDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// mosquittoWait bounds Mosquitto's start (until it accepts connections) and
// its exit after SIGTERM (then it is killed).
const mosquittoWait = 10 * time.Second

// StartMosquitto starts Mosquitto for the test and returns once it accepts
// connections. Without a mosquitto program (in PATH or /usr/sbin) the test
// is skipped loudly, or fails under HUB_REQUIRE_ALL=1 (see [RequireCommand]).
//
// extraConfig are lines added to the listener's configuration, such as
// "max_packet_size 4096" or "max_topic_alias 5".
func StartMosquitto(t testing.TB, extraConfig ...string) *Mosquitto {
	t.Helper()
	m := &Mosquitto{t: t, path: findMosquitto(t), dir: t.TempDir(), extra: extraConfig}
	t.Cleanup(m.Stop)
	// A free port is found by binding :0 and letting it go; should another
	// process take it before Mosquitto does, another port is tried.
	var err error
	for range 3 {
		m.addr = FreeLoopbackAddr(t)
		if err = m.start(); err == nil {
			return m
		}
	}
	t.Fatalf("starting mosquitto: %v", err)
	return nil
}

// findMosquitto returns the path of the mosquitto program, or skips or fails
// the test as RequireCommand does.
func findMosquitto(t testing.TB) string {
	t.Helper()
	if path, err := exec.LookPath("mosquitto"); err == nil {
		return path
	}
	for _, dir := range mosquittoDirs {
		path := filepath.Join(dir, "mosquitto")
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return path
		}
	}
	return RequireCommand(t, "mosquitto", "mosquitto") // skips or fails
}

// FreeLoopbackAddr is a port of 127.0.0.1 that was free a moment ago, for a
// program the test starts on an address it must be given.
func FreeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Addr is the broker's address, 127.0.0.1:port. It stays the same across
// Stop and Restart.
func (m *Mosquitto) Addr() string { return m.addr }

// URL is the broker's address as an mqtt:// URL.
func (m *Mosquitto) URL() string { return "mqtt://" + m.addr }

// config is the broker's configuration: one listener on the loopback
// address only. As root, Mosquitto would switch to the user "mosquitto",
// who cannot write the test's directory: it stays root there.
func (m *Mosquitto) config() string {
	_, port, _ := net.SplitHostPort(m.addr)
	var b strings.Builder
	fmt.Fprintf(&b, "listener %s 127.0.0.1\n", port)
	b.WriteString("allow_anonymous true\n")
	b.WriteString("persistence false\n")
	b.WriteString("sys_interval 1\n")
	fmt.Fprintf(&b, "log_dest file %s\n", filepath.Join(m.dir, "mosquitto.log"))
	b.WriteString("log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
	b.WriteString("log_timestamp_format %H:%M:%S\n")
	if os.Geteuid() == 0 {
		b.WriteString("user root\n")
	}
	for _, line := range m.extra {
		b.WriteString(line + "\n")
	}
	return b.String()
}

// start runs the broker and waits until it accepts connections.
func (m *Mosquitto) start() error {
	conf := filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(m.config()), 0o600); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(m.path, "-c", conf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = mosquittoProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	p := &mosquittoProc{cmd: cmd, exited: make(chan struct{})}
	go func() { // ends when the broker does; stop waits for it
		defer close(p.exited)
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(mosquittoWait)
	for {
		conn, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			_ = conn.Close()
			break
		}
		select {
		case <-p.exited:
			return fmt.Errorf("mosquitto exited at start (%v); its output:\n%s", cmd.ProcessState, m.Output())
		default:
		}
		if time.Now().After(deadline) {
			stopProc(p)
			return fmt.Errorf("mosquitto did not accept connections on %s within %v; its output:\n%s", m.addr, mosquittoWait, m.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
	return nil
}

// Stop stops the broker (SIGTERM to its PID, SIGKILL if it has not exited
// within 10 s) and waits until it has exited. Stopping a stopped broker does
// nothing.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	p := m.proc
	m.proc = nil
	m.mu.Unlock()
	if p != nil {
		stopProc(p)
	}
}

func stopProc(p *mosquittoProc) { StopProcess(p.cmd, p.exited, mosquittoWait) }

// Restart starts the broker again on the same address, stopping it first if
// it runs, and returns once it accepts connections. It has forgotten every
// session, subscription and retained message.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.t.Fatalf("restarting mosquitto: %v", err)
	}
}

// Running reports whether the broker runs (it was not stopped and has not exited).
func (m *Mosquitto) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return false
	}
	select {
	case <-m.proc.exited:
		return false
	default:
		return true
	}
}

// Output returns what the broker logged so far, across restarts: its log
// file and what it wrote to stdout and stderr.
func (m *Mosquitto) Output() string {
	var b strings.Builder
	for _, name := range []string{"mosquitto.out", "mosquitto.log"} {
		data, err := os.ReadFile(filepath.Join(m.dir, name))
		if err == nil && len(data) > 0 {
			b.WriteString("--- " + name + "\n")
			b.Write(data)
		}
	}
	return b.String()
}
