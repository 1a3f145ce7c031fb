package natstest

import (
	"fmt"
	"strconv"
	"strings"
)

// clusterName is the name every node's cluster block gives.
const clusterName = "motehub-test"

// User is an account the nodes accept on their NATS and MQTT listeners
// (MQTT: the CONNECT's user name and password). Every user may publish and
// subscribe everything, JetStream included.
type User struct {
	Name, Password string
}

// nodeConfig is the configuration file of node n of a cluster of nodes: its
// name, its listeners on loopback (NATS, MQTT, cluster routes, HTTP
// monitoring), a JetStream store of its own, routes, the users when there
// are any, and the mqtt block's extra lines. The MQTT gateway needs both JetStream and a server_name
// (nats-server refuses MQTT in a cluster without one).
//
// The routes list every node, n itself included (a node ignores the route
// to itself): nats-server gives the MQTT gateway's streams as many replicas
// as routes are listed, up to 3, and with routes to the others only a
// three-node cluster's streams get 2 replicas, which lose their quorum, and
// with it every QoS 1 publish, when one node dies.
func nodeConfig(n *Node, nodes []*Node, users []User, mqtt []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\n", quote(n.Name))
	fmt.Fprintf(&b, "listen: %s\n", quote(n.NATSAddr))
	fmt.Fprintf(&b, "http: %s\n", quote(n.httpAddr))
	b.WriteString("logtime: true\n")
	// Small limits: a test's streams are small, and a test machine's disk
	// and memory are shared.
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %s\n  max_memory_store: 268435456\n  max_file_store: 1073741824\n}\n", quote(n.storeDir))
	fmt.Fprintf(&b, "mqtt {\n  listen: %s\n", quote(n.MQTTAddr))
	for _, line := range mqtt {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	b.WriteString("}\n")
	if len(nodes) > 1 { // one node is a server of its own: JetStream unclustered
		fmt.Fprintf(&b, "cluster {\n  name: %s\n  listen: %s\n  routes: [\n", quote(clusterName), quote(n.clusterAddr))
		for _, p := range nodes {
			fmt.Fprintf(&b, "    %s\n", quote("nats-route://"+p.clusterAddr))
		}
		b.WriteString("  ]\n}\n")
	}
	if len(users) > 0 {
		b.WriteString("authorization {\n  users: [\n")
		for _, u := range users {
			fmt.Fprintf(&b, "    {user: %s, password: %s}\n", quote(u.Name), quote(u.Password))
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

// quote is s as a string of nats-server's configuration language, whose
// double-quoted strings take the escapes of Go's (for the printable ASCII
// and \t \n \" \\ a test uses).
func quote(s string) string { return strconv.Quote(s) }
