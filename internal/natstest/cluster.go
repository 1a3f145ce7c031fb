package natstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// Options configure [StartCluster].
type Options struct {
	// Nodes is the number of nodes, 1 to 9; 0 means 3. One node is a
	// server of its own (no cluster block, JetStream not clustered).
	Nodes int
	// Users are the accounts the nodes accept; none: anyone may connect,
	// without credentials.
	Users []User
	// MQTT are more lines of each node's mqtt block, such as
	// "js_api_timeout: 15s"; none: nats-server's defaults.
	MQTT []string
}

// maxNodes bounds a cluster: each node holds 4 ports, a JetStream store
// and a process.
const maxNodes = 9

// startAttempts bounds how often StartCluster picks new ports after a
// node found one of its ports taken (free ports are found by binding :0 and
// letting go, and another process may take one before the node does).
const startAttempts = 3

// serveWait bounds a node's start: until its JetStream is current with the
// meta leader and it accepts an MQTT connection.
const serveWait = 90 * time.Second

// stopWait is how long a node has to exit after SIGTERM before SIGKILL.
const stopWait = 10 * time.Second

// logLimit bounds the log kept per node (its last bytes), shown when the
// test fails.
const logLimit = 256 << 10

// Node is one nats-server of a cluster. Its addresses stay the same across
// Kill and Restart.
type Node struct {
	Name     string // its server_name: n0, n1, ...
	MQTTAddr string // the MQTT gateway, 127.0.0.1:port
	NATSAddr string // NATS clients, 127.0.0.1:port

	clusterAddr string // routes between nodes
	httpAddr    string // monitoring: /healthz
	storeDir    string // JetStream's store, kept across restarts
	confPath    string
	out         *boundedOutput // across restarts

	proc *process // guarded by Cluster.mu; nil while stopped
}

// MQTTURL is the node's MQTT gateway as an mqtt:// URL.
func (n *Node) MQTTURL() string { return "mqtt://" + n.MQTTAddr }

// NATSURL is the node's NATS listener as a nats:// URL.
func (n *Node) NATSURL() string { return "nats://" + n.NATSAddr }

// process is one run of a node.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
}

// Cluster is a running nats-server cluster on loopback, started by
// [StartCluster]. Its methods are safe for concurrent use; Kill and Restart
// fail the test (t.Fatal) and so belong to the test's goroutine.
type Cluster struct {
	Nodes []*Node

	t     testing.TB
	bin   string
	users []User
	mqtt  []string   // more lines of the mqtt block
	mu    sync.Mutex // guards each Node's proc
}

// errAddrInUse: a node could not bind one of its ports.
var errAddrInUse = errors.New("a port was taken")

// StartCluster starts o.Nodes nodes of one cluster, each with JetStream
// (its store in the test's temporary directory), the MQTT gateway, HTTP
// monitoring and routes to the others, all on free loopback ports. It
// returns once every node's /healthz says it is current with a JetStream
// meta leader and every node accepted an MQTT connection. When the test
// ends every node is stopped (SIGTERM, then SIGKILL), by its PID; when it
// failed, the nodes' logs are shown.
func StartCluster(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > maxNodes {
		t.Fatalf("natstest: a cluster of %d nodes; want 1 to %d", o.Nodes, maxNodes)
	}
	c := &Cluster{t: t, bin: Binary(t), users: o.Users, mqtt: o.MQTT}
	dir := t.TempDir() // before stopAll's cleanup, so removed after it ran
	t.Cleanup(c.stopAll)
	t.Cleanup(func() { // runs before stopAll
		if t.Failed() {
			t.Logf("the nats-server cluster's logs:\n%s", c.Output())
		}
	})
	var err error
	for attempt := range startAttempts {
		c.Nodes = c.Nodes[:0]
		for i := range o.Nodes {
			nodeDir := filepath.Join(dir, fmt.Sprintf("attempt%d", attempt), fmt.Sprintf("n%d", i))
			c.Nodes = append(c.Nodes, &Node{
				Name:        fmt.Sprintf("n%d", i),
				MQTTAddr:    hubtest.FreeLoopbackAddr(t),
				NATSAddr:    hubtest.FreeLoopbackAddr(t),
				clusterAddr: hubtest.FreeLoopbackAddr(t),
				httpAddr:    hubtest.FreeLoopbackAddr(t),
				storeDir:    filepath.Join(nodeDir, "jetstream"),
				confPath:    filepath.Join(nodeDir, "nats.conf"),
				out:         &boundedOutput{limit: logLimit},
			})
		}
		if err = c.startAll(); err == nil {
			return c
		}
		c.stopAll()
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("natstest: starting a cluster of %d nodes: %v\n%s", o.Nodes, err, c.Output())
	return nil
}

// startAll writes every node's configuration, starts them all, then waits
// until each serves.
func (c *Cluster) startAll() error {
	for _, n := range c.Nodes {
		if err := os.MkdirAll(filepath.Dir(n.confPath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(n.confPath, []byte(nodeConfig(n, c.Nodes, c.users, c.mqtt)), 0o600); err != nil {
			return err
		}
		if err := c.launch(n); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(serveWait)
	for _, n := range c.Nodes {
		if err := c.waitServing(n, deadline); err != nil {
			return err
		}
	}
	return nil
}

// launch starts node n's process.
func (c *Cluster) launch(n *Node) error {
	cmd := exec.Command(c.bin, "-c", n.confPath)
	cmd.Stdout, cmd.Stderr = n.out, n.out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", c.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { // ends when the node does; stopping waits for it
		defer close(p.exited)
		_ = cmd.Wait()
	}()
	c.mu.Lock()
	n.proc = p
	c.mu.Unlock()
	return nil
}

// waitServing polls node n until its /healthz answers 200 (JetStream is
// current with the meta leader) and it accepts an MQTT connection, or
// until deadline, or until it exits.
func (c *Cluster) waitServing(n *Node, deadline time.Time) error {
	c.mu.Lock()
	p := n.proc
	c.mu.Unlock()
	for {
		select {
		case <-p.exited:
			err := fmt.Errorf("node %s exited at start (%v)", n.Name, p.cmd.ProcessState)
			if strings.Contains(n.out.String(), "address already in use") {
				err = fmt.Errorf("%w: %w", err, errAddrInUse)
			}
			return err
		default:
		}
		err := healthz(n.httpAddr)
		if err == nil {
			err = c.connectMQTT(n)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s does not serve within %v: %w", n.Name, serveWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healthz asks a node's monitoring port whether it is healthy: with
// JetStream in a cluster, current with the meta leader and its streams.
func healthz(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	req.Close = true // no idle connection outlives the check
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// connectMQTT connects to node n's MQTT gateway (as the first user, if any)
// and disconnects: the gateway answers CONNECT only once it has its
// JetStream streams.
func (c *Cluster) connectMQTT(n *Node) error {
	var user, password string
	if len(c.users) > 0 {
		user, password = c.users[0].Name, c.users[0].Password
	}
	client, err := hubtest.ConnectMQTTAs(n.MQTTAddr, "natstest-probe-"+n.Name, user, password)
	if err != nil {
		return fmt.Errorf("MQTT: %w", err)
	}
	client.Disconnect(50)
	return nil
}

// node returns node i, failing the test when there is none.
func (c *Cluster) node(i int) *Node {
	c.t.Helper()
	if i < 0 || i >= len(c.Nodes) {
		c.t.Fatalf("natstest: no node %d in a cluster of %d", i, len(c.Nodes))
	}
	return c.Nodes[i]
}

// Kill kills node i (SIGKILL, by its PID) and waits until it has exited. A
// stopped node stays stopped.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	n := c.node(i)
	c.mu.Lock()
	p := n.proc
	n.proc = nil
	c.mu.Unlock()
	if p != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Restart starts node i again, with the same ports and JetStream store
// (stopping it first if it runs), and returns once it serves (as
// StartCluster waits).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n := c.node(i)
	c.stop(n)
	if err := c.launch(n); err != nil {
		c.t.Fatalf("natstest: restarting node %s: %v", n.Name, err)
	}
	if err := c.waitServing(n, time.Now().Add(serveWait)); err != nil {
		c.t.Fatalf("natstest: restarting node %s: %v\n%s", n.Name, err, n.out.String())
	}
}

// Running reports whether node i runs (it was not killed and has not exited).
func (c *Cluster) Running(i int) bool {
	n := c.node(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.proc == nil {
		return false
	}
	select {
	case <-n.proc.exited:
		return false
	default:
		return true
	}
}

// stop stops node n: SIGTERM, then SIGKILL after stopWait; it returns once
// the node has exited.
func (c *Cluster) stop(n *Node) {
	c.mu.Lock()
	p := n.proc
	n.proc = nil
	c.mu.Unlock()
	if p == nil {
		return
	}
	hubtest.StopProcess(p.cmd, p.exited, stopWait)
}

// stopAll stops every node, all at once.
func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() { c.stop(n) })
	}
	wg.Wait()
}

// NATSURLs are the nodes' NATS listeners, in order.
func (c *Cluster) NATSURLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.NATSURL()
	}
	return urls
}

// MQTTURLs are the nodes' MQTT gateways, in order.
func (c *Cluster) MQTTURLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.MQTTURL()
	}
	return urls
}

// Output is what the nodes logged (the last 256 KiB of each), across
// restarts.
func (c *Cluster) Output() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "--- node %s (NATS %s, MQTT %s)\n%s", n.Name, n.NATSAddr, n.MQTTAddr, n.out.String())
	}
	return b.String()
}
