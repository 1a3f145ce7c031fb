package natstest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// orphanHelper, set in a test process's environment, makes
// TestKilledTestLeavesNoServer start a cluster, print its servers' PIDs and
// wait to be killed.
const orphanHelper = "NATSTEST_ORPHAN_HELPER"

// TestKilledTestLeavesNoServer: a test process killed mid-way (SIGKILL: no
// cleanup runs) leaves no nats-server running; Linux kills them with it
// (Pdeathsig).
func TestKilledTestLeavesNoServer(t *testing.T) {
	if os.Getenv(orphanHelper) == "1" {
		c := StartCluster(t, Options{Nodes: 2})
		c.mu.Lock()
		var pids []string
		for _, n := range c.Nodes {
			pids = append(pids, strconv.Itoa(n.proc.cmd.Process.Pid))
		}
		c.mu.Unlock()
		fmt.Println("PIDS", strings.Join(pids, " "))
		time.Sleep(time.Minute) // the parent kills this process long before
		t.Fatal("not killed")
	}
	Binary(t) // built here, not in the helper (or skipped loudly)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledTestLeavesNoServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), orphanHelper+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	var (
		mu     sync.Mutex
		others []string // the helper's other output, shown if it fails
	)
	go func() { // ends when the helper's stdout closes, as it dies
		s := bufio.NewScanner(out)
		for s.Scan() {
			if pids, ok := strings.CutPrefix(s.Text(), "PIDS "); ok {
				lines <- pids
				continue
			}
			mu.Lock()
			others = append(others, s.Text())
			mu.Unlock()
		}
		close(lines)
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(others, "\n")
	}
	// The helper's StartCluster waits up to serveWait for its nodes (a
	// loaded machine is slow to elect JetStream's leader): wait longer.
	var pids []string
	select {
	case line, ok := <-lines:
		pids = strings.Fields(line)
		if !ok {
			t.Fatalf("the helper ended without its servers' PIDs:\n%s", output())
		}
	case <-time.After(serveWait + hubtest.Timeout):
		t.Fatalf("no PIDs from the helper within %v:\n%s", serveWait+hubtest.Timeout, output())
	}
	if len(pids) != 2 {
		t.Fatalf("PIDs %q, want 2", pids)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for range lines { // the reader's end
	}
	for _, pid := range pids {
		hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil || strings.Contains(string(stat), ") Z ") { // gone, or dead and not yet reaped
				return nil
			}
			return fmt.Errorf("nats-server %s still runs after its test process was killed: %s", pid, stat)
		})
	}
}
