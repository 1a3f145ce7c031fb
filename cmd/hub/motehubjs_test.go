//go:build unix

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestMotehubJSNode runs the Node tests of motehub.js (web/jstest/*.test.mjs,
// node --test), one subtest per file, against the hub binary built here:
// each file starts and stops its own hub processes (loopback, --data in a
// temporary directory), with a TCP proxy of its own between the client and
// the hub. They need Node.js 20 or later and MQTT.js for their devices,
// which `make test` installs; without them the test is skipped loudly, or
// fails under HUB_REQUIRE_ALL=1.
func TestMotehubJSNode(t *testing.T) {
	node := hubtest.RequireNode(t)
	mqttjs := hubtest.MQTTJSPackage(t)
	files, err := filepath.Glob(filepath.Join(hubtest.ModuleRoot(t), "web", "jstest", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Node tests in web/jstest (%v)", err)
	}
	bin := hubtest.BuildBinary(t, "hub")
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".test.mjs"), func(t *testing.T) {
			env := []string{"MOTEHUB_HUB_BIN=" + bin, "MOTEHUB_JSTEST_TMP=" + t.TempDir(), "MOTEHUB_MQTTJS=" + mqttjs}
			out, err := runNodeTest(t, node, env, file)
			if err != nil {
				t.Fatalf("node --test %s: %v\n%s", filepath.Base(file), err, out)
			}
			t.Logf("node --test %s:\n%s", filepath.Base(file), out)
		})
	}
}

// nodeTestTimeout bounds one file's Node tests.
const nodeTestTimeout = 3 * time.Minute

// runNodeTest runs node --test on file with env added to this process's
// environment without its HUB_ variables, and returns what it printed. Node
// runs in a process group of its own, with the hubs its tests start: when
// the run takes longer than nodeTestTimeout the group is killed, and so no
// hub outlives the test.
func runNodeTest(t *testing.T, node hubtest.Node, env []string, file string) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), nodeTestTimeout)
	defer cancel()
	args := append(append([]string{}, node.Flags...), "--test", "--test-reporter=spec")
	if node.ForceExit {
		args = append(args, "--test-force-exit")
	}
	args = append(args, file)
	cmd := exec.CommandContext(ctx, node.Path, args...)
	cmd.Dir = filepath.Dir(file)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUB_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // the group this test started
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	// The tests stop the hubs they start; one still running is a fault of
	// theirs, and ends with the group.
	if syscall.Kill(-cmd.Process.Pid, 0) == nil {
		t.Errorf("processes that the Node tests started outlived them (process group %d): killing them", cmd.Process.Pid)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		return string(out), ctx.Err()
	}
	return string(out), err
}
