package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/natstest"
)

// docker-compose.yml cannot run here (no Docker): these tests read it and
// check what can be checked without it.

// composeFile is the part of docker-compose.yml the tests read. YAML
// anchors and merge keys (hub-2 is <<: *hub) are resolved by the decoder.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string     `yaml:"image"`
	Entrypoint  []string   `yaml:"entrypoint"`
	Command     []string   `yaml:"command"`
	Environment composeEnv `yaml:"environment"`
	Volumes     []string   `yaml:"volumes"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeEnv is a service's environment, which Compose takes as a map or as
// a list of NAME=value.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]string
		if err := n.Decode(&m); err != nil {
			return err
		}
		*e = m
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("environment entry %q: want NAME=value", kv)
			}
			(*e)[k] = v
		}
	default:
		return fmt.Errorf("environment: want a map or a list, got YAML kind %v", n.Kind)
	}
	return nil
}

func readCompose(t *testing.T) (root string, c composeFile) {
	t.Helper()
	root = hubtest.ModuleRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return root, c
}

// services returns the names of the services that is picks, sorted.
func (c composeFile) services(is func(composeService) bool) []string {
	var names []string
	for name, s := range c.Services {
		if is(s) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func isNATS(s composeService) bool { return strings.HasPrefix(s.Image, "nats:") }

// isHub: the motehub image with its own entrypoint (motesim has another).
func isHub(s composeService) bool { return s.Image == "motehub:local" && len(s.Entrypoint) == 0 }

// TestComposeHubFlags: every hub of docker-compose.yml has a command line
// (with its environment) that the hub accepts, through the same parsing
// as `hub` itself, and names every NATS node of the file as its upstream,
// on the port the nodes' MQTT gateway listens on.
func TestComposeHubFlags(t *testing.T) {
	_, c := readCompose(t)
	hubs, nodes := c.services(isHub), c.services(isNATS)
	if len(hubs) < 2 || len(nodes) < 3 {
		t.Fatalf("docker-compose.yml has the hubs %v and the NATS nodes %v; want 2 replicas and 3 nodes at least", hubs, nodes)
	}
	var want []string
	for _, n := range nodes {
		want = append(want, "mqtt://"+n+":1883")
	}
	for _, name := range hubs {
		s := c.Services[name]
		if len(s.Command) == 0 {
			t.Errorf("hub %s: no command (as a list)", name)
			continue
		}
		for _, arg := range s.Command {
			if strings.Contains(arg, "$") {
				t.Errorf("hub %s: %q: Compose would substitute its $", name, arg)
			}
		}
		lookup := func(k string) (string, bool) { v, ok := s.Environment[k]; return v, ok }
		o, err := parseOptions(s.Command, lookup, io.Discard)
		if err != nil {
			t.Errorf("hub %s: the hub refuses its command line %q: %v", name, s.Command, err)
			continue
		}
		if !slices.Equal(o.Upstream, want) || o.MQTTAddr != "" {
			t.Errorf("hub %s: upstream %q, embedded broker %q; want every node, %q, and no embedded broker", name, o.Upstream, o.MQTTAddr, want)
		}
	}
	// The motes connect to a node too.
	for _, name := range c.services(func(s composeService) bool { return slices.Contains(s.Entrypoint, "/usr/local/bin/motesim") }) {
		args := c.Services[name].Command
		i := slices.Index(args, "--broker")
		if i < 0 || i+1 >= len(args) || !slices.ContainsFunc(nodes, func(n string) bool { return args[i+1] == "tcp://"+n+":1883" }) {
			t.Errorf("%s: %q; want --broker tcp://NODE:1883 with NODE one of %v", name, args, nodes)
		}
	}
}

// TestComposeNATSConfig: every NATS node of docker-compose.yml mounts a
// configuration file of the repository, which nats-server (the version the
// tests run) accepts for that node (`nats-server -t`, its environment
// given), whose routes name every node of the file, the node itself
// included (as natstest's do: nats-server counts them), and whose MQTT
// streams have a replica on each node. Each node has a health check and a
// store of its own.
func TestComposeNATSConfig(t *testing.T) {
	root, c := readCompose(t)
	nodes := c.services(isNATS)
	if len(nodes) < 3 {
		t.Fatalf("docker-compose.yml has the NATS nodes %v; want 3 at least", nodes)
	}
	bin := natstest.Binary(t)
	route := regexp.MustCompile(`nats-route://([A-Za-z0-9_-]+):6222`)
	names := map[string]string{}
	stores := map[string]string{}
	for _, name := range nodes {
		s := c.Services[name]
		i := slices.Index(s.Command, "--config")
		if i < 0 || i+1 >= len(s.Command) {
			t.Errorf("node %s: command %q has no --config", name, s.Command)
			continue
		}
		target := s.Command[i+1]
		var file string
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			switch {
			case len(parts) >= 2 && parts[1] == target:
				file = filepath.Join(root, filepath.FromSlash(parts[0]))
			case len(parts) >= 2 && parts[1] == "/data":
				if _, named := c.Volumes[parts[0]]; !named {
					t.Errorf("node %s: its store %q is not a named volume", name, parts[0])
				}
				if other, dup := stores[parts[0]]; dup {
					t.Errorf("nodes %s and %s share the store %s", other, name, parts[0])
				}
				stores[parts[0]] = name
			}
		}
		if file == "" {
			t.Errorf("node %s: nothing is mounted on %s, its --config", name, target)
			continue
		}
		conf, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("node %s: %v", name, err)
			continue
		}
		if s.Healthcheck == nil || !slices.ContainsFunc(s.Healthcheck.Test, func(a string) bool { return strings.Contains(a, "/healthz") }) {
			t.Errorf("node %s: no health check on /healthz", name)
		}
		nodeName := s.Environment["NATS_NAME"]
		if other, dup := names[nodeName]; dup || nodeName == "" {
			t.Errorf("node %s: NATS_NAME %q (also %s's): each node needs a name of its own", name, nodeName, other)
		}
		names[nodeName] = name

		var routes []string
		for _, m := range route.FindAllStringSubmatch(string(conf), -1) {
			routes = append(routes, m[1])
		}
		slices.Sort(routes)
		if !slices.Equal(routes, nodes) {
			t.Errorf("%s routes to %v; want every node of docker-compose.yml, itself included: %v", file, routes, nodes)
		}
		if replicas := fmt.Sprintf("stream_replicas: %d", min(len(nodes), 3)); !strings.Contains(string(conf), replicas) {
			t.Errorf("%s: no %q in its mqtt block", file, replicas)
		}

		cmd := exec.Command(bin, "-t", "-c", file)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range s.Environment {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("node %s: nats-server %s refuses %s: %v\n%s", name, natstest.Version, file, err, out)
		}
	}
}
