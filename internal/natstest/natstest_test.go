package natstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/motehub/motehub/internal/hubtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBuildNATSServer builds nats-server into the cache, if it is not
// there yet: `make test-deps` runs it so that the first cluster test does
// not pay for the build.
func TestBuildNATSServer(t *testing.T) {
	bin := Binary(t)
	if err := checkVersion(bin); err != nil {
		t.Fatal(err)
	}
}

// TestToolPinsVersion: the tool module requires the nats-server Version
// names, so that the cache's file name says what it holds.
func TestToolPinsVersion(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join("tool", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "require " + serverPackage + " " + Version + "\n"; !strings.Contains(string(gomod), want) {
		t.Fatalf("tool/go.mod does not have %q:\n%s", want, gomod)
	}
}

// TestBuildIsCachedAndLocked: a second build into the same cache finds the
// first one's binary; the lock is free once a build is done; a cache entry
// of another version is built again.
func TestBuildIsCachedAndLocked(t *testing.T) {
	src := Binary(t)
	dir := t.TempDir()
	name := filepath.Base(src)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
		t.Fatal(err)
	}
	// No go tool needed: the cached binary answers --version.
	got, err := buildCached("/nonexistent/go", "/nonexistent", dir)
	if err != nil || got != filepath.Join(dir, name) {
		t.Fatalf("a cached binary: %q, %v", got, err)
	}
	unlock, err := lockFile(filepath.Join(dir, name)+".lock", time.Second)
	if err != nil {
		t.Fatalf("the lock after a build: %v", err)
	}
	if _, err := lockFile(filepath.Join(dir, name)+".lock", 200*time.Millisecond); err == nil {
		t.Fatal("a second lock while the first is held")
	}
	unlock()
	// Something else under the cache's name is not trusted: it is rebuilt
	// (here with a go tool that is not there, so the build fails).
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho nats-server: v0.0.1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := buildCached("/nonexistent/go", "/nonexistent", dir); err == nil {
		t.Fatal("a cached binary of another version was taken")
	}
}

// TestCluster: three nodes; a message published on node 0 reaches a
// subscriber on node 2; with node 1 killed the other two carry on, and
// restarted it serves again.
func TestCluster(t *testing.T) {
	users := []User{{Name: "hub", Password: "s3cret"}}
	c := StartCluster(t, Options{Users: users})
	if len(c.Nodes) != 3 || len(c.MQTTURLs()) != 3 || len(c.NATSURLs()) != 3 {
		t.Fatalf("nodes %d, MQTT URLs %v, NATS URLs %v; want 3 of each", len(c.Nodes), c.MQTTURLs(), c.NATSURLs())
	}
	for i, n := range c.Nodes {
		if !strings.HasPrefix(n.MQTTAddr, "127.0.0.1:") || !strings.HasPrefix(n.NATSAddr, "127.0.0.1:") {
			t.Errorf("node %d listens on %s and %s, want loopback only", i, n.MQTTAddr, n.NATSAddr)
		}
		if c.MQTTURLs()[i] != "mqtt://"+n.MQTTAddr || c.NATSURLs()[i] != "nats://"+n.NATSAddr {
			t.Errorf("node %d: URLs %s %s", i, c.MQTTURLs()[i], c.NATSURLs()[i])
		}
	}
	if cl, err := hubtest.ConnectMQTTAs(c.Nodes[0].MQTTAddr, "stranger", "hub", "wrong"); err == nil {
		cl.Disconnect(0)
		t.Error("a wrong password was accepted")
	}

	// A '.' in a topic is a character of the level, not a NATS token separator.
	deliver(t, c, 0, 2, "nodes/m1.v2/temperature")

	// /connz names the MQTT clients of a node.
	client, err := hubtest.ConnectMQTTAs(c.Nodes[2].MQTTAddr, "find-me", "hub", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		for i := range c.Nodes {
			ids, err := c.MQTTClientIDs(i)
			if err != nil {
				return err
			}
			if slices.Contains(ids, "find-me") != (i == 2) {
				return fmt.Errorf("node %d has the MQTT clients %q; want find-me on node 2 only", i, ids)
			}
		}
		return nil
	})
	client.Disconnect(50)

	c.Kill(1)
	if c.Running(1) {
		t.Fatal("node 1 runs after Kill")
	}
	// The streams of the MQTT gateway elect new leaders where node 1 led
	// them; meanwhile QoS 1 publishes wait, and a connection whose publish
	// waits more than 5 s is closed by the node.
	start := time.Now()
	deliver(t, c, 0, 2, "nodes/m1/while-n1-down")
	t.Logf("with node 1 killed, nodes 0 and 2 carried a QoS 1 message within %v", time.Since(start).Round(time.Millisecond))

	c.Restart(1)
	if !c.Running(1) {
		t.Fatal("node 1 does not run after Restart")
	}
	deliver(t, c, 1, 2, "nodes/m2/from-n1")
}

// deliverWait bounds deliver: a JetStream leader election after a node
// died takes seconds.
const deliverWait = 60 * time.Second

// deliver checks that a QoS 1 message published on node from reaches a
// QoS 1 subscriber on node to, trying again with new connections until it
// does (a node may close connections while its JetStream recovers).
func deliver(t *testing.T, c *Cluster, from, to int, topic string) {
	t.Helper()
	var last error
	deadline := time.Now().Add(deliverWait)
	for round := 0; time.Now().Before(deadline); round++ {
		if last = tryDeliver(c, from, to, topic, round); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("after %v, a message published on node %d does not reach node %d: %v", deliverWait, from, to, last)
}

// tryDeliver connects a subscriber to node to and a publisher to node from
// (as the cluster's first user, if any), publishes one message on topic and
// waits a few seconds for it; both clients are gone when it returns.
func tryDeliver(c *Cluster, from, to int, topic string, round int) error {
	var user, password string
	if len(c.users) > 0 {
		user, password = c.users[0].Name, c.users[0].Password
	}
	sub, err := hubtest.ConnectMQTTAs(c.Nodes[to].MQTTAddr, fmt.Sprintf("watcher-%d", round), user, password)
	if err != nil {
		return fmt.Errorf("connecting to node %d: %w", to, err)
	}
	defer sub.Disconnect(50)
	got := make(chan string, 16) // more than the one message it waits for
	tok := sub.Subscribe("nodes/#", 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- m.Topic():
		default:
		}
	})
	if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		return fmt.Errorf("subscribing on node %d: %v", to, tok.Error())
	}
	pub, err := hubtest.ConnectMQTTAs(c.Nodes[from].MQTTAddr, fmt.Sprintf("device-%d", round), user, password)
	if err != nil {
		return fmt.Errorf("connecting to node %d: %w", from, err)
	}
	defer pub.Disconnect(50)
	// The subscription made on one node reaches the others' interest just
	// after its SUBACK: publish again, a few times, until one arrives.
	for range 20 {
		tok := pub.Publish(topic, 1, false, []byte("1"))
		if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
			return fmt.Errorf("publishing on node %d: %v", from, tok.Error())
		}
		select {
		case gotTopic := <-got:
			if gotTopic != topic {
				return fmt.Errorf("node %d delivered %q, want %q", to, gotTopic, topic)
			}
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing arrived on node %d", to)
}

// TestNodeConfig: a node's configuration names it, routes to every node
// (itself included), carries the users and the mqtt block's extra lines,
// and nats-server accepts it (-t); a single node has no cluster block.
func TestNodeConfig(t *testing.T) {
	bin := Binary(t)
	dir := t.TempDir()
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = &Node{Name: fmt.Sprintf("n%d", i), MQTTAddr: fmt.Sprintf("127.0.0.1:%d", 1883+i), NATSAddr: fmt.Sprintf("127.0.0.1:%d", 4222+i),
			clusterAddr: fmt.Sprintf("127.0.0.1:%d", 6222+i), httpAddr: fmt.Sprintf("127.0.0.1:%d", 8222+i), storeDir: filepath.Join(dir, "js")}
	}
	users := []User{{Name: "hub", Password: `pa"ss`}}
	conf := nodeConfig(nodes[1], nodes, users, []string{"js_api_timeout: 15s"})
	for _, want := range []string{`server_name: "n1"`, `"nats-route://127.0.0.1:6222"`, `"nats-route://127.0.0.1:6223"`, `"nats-route://127.0.0.1:6224"`,
		`listen: "127.0.0.1:1884"`, "js_api_timeout: 15s", `password: "pa\"ss"`, "store_dir:"} {
		if !strings.Contains(conf, want) {
			t.Errorf("node n1's configuration has no %s:\n%s", want, conf)
		}
	}
	single := nodeConfig(nodes[0], nodes[:1], nil, nil)
	if strings.Contains(single, "cluster") {
		t.Errorf("a single node's configuration has a cluster block:\n%s", single)
	}
	for name, text := range map[string]string{"three.conf": conf, "one.conf": single} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-t", "-c", path).CombinedOutput(); err != nil {
			t.Errorf("nats-server -t refuses %s: %v\n%s\n%s", name, err, out, text)
		}
	}
}

// TestBoundedOutput: a node's log keeps its last bytes, cut at a line
// where it can be, and never more than its limit.
func TestBoundedOutput(t *testing.T) {
	b := &boundedOutput{limit: 64}
	for i := range 100 {
		fmt.Fprintf(b, "line %02d\n", i)
		if n := len(b.String()); n > 64 {
			t.Fatalf("after line %d the log holds %d bytes, over its limit of 64", i, n)
		}
	}
	if got := b.String(); !strings.HasPrefix(got, "line ") || !strings.HasSuffix(got, "line 99\n") {
		t.Errorf("the log kept %q; want whole lines, the last one last", got)
	}
	fmt.Fprint(b, strings.Repeat("x", 200)) // one write longer than the limit, no newline in it
	if got := b.String(); len(got) > 64 || !strings.HasSuffix(got, "xxxx") {
		t.Errorf("after a long write the log holds %d bytes: %q", len(got), got)
	}
}
