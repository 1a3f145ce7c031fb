package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/internal/tomltext"
)

// options is everything the command line and the environment decide.
type options struct {
	HTTPAddr       string
	MQTTAddr       string
	MQTTSAddr      string
	LogLevel       slog.Level
	LogFormat      string
	ConfigFile     string
	AllowOrigins   []string
	AllowHosts     []string
	AllowAnonymous bool
	UsersFile      string
	TLSCert        string
	TLSKey         string
	TrustedProxies []netip.Prefix
	DataDir        string
	SyncInterval   time.Duration

	// The topics kept, in memory and on disk (bridge.Config and
	// broker.StoreConfig alike): their last values and recent messages.
	MaxTopics      int
	RecentMessages int
	RecentBytes    int64

	// The history on disk (history.Config, history.go): how long each level
	// is kept, its disk budget (0: off), the series and the topics recorded.
	HistoryRaw        time.Duration
	HistoryFiveMinute time.Duration
	HistoryHourly     time.Duration
	HistoryBytes      int64
	HistorySeries     int
	HistoryTopics     []string

	MaxMessageBytes          int
	RateLimit                float64
	MQTTRateLimit            float64
	MaxConnections           int
	MaxConnectionsPerAddress int
	MaxSubscriptions         int
	MaxStateValues           int
	MaxDevices               int // the device model's bound (devices.Config.MaxDevices)
	ReadHeaderTimeout        time.Duration
	IdleTimeout              time.Duration

	// The MQTT broker's bounds (broker.Config).
	MQTTConnectTimeout   time.Duration
	MQTTMaxSessions      int
	MQTTSessionExpiry    time.Duration
	MQTTMaxSubscriptions int
	MQTTMaxQueued        int

	// Command confirmation, and the simulated motes of --demo (demo.go).
	AckTimeout time.Duration
	// CoalesceWindow: bridge.Config.CoalesceWindow, 0 for off.
	CoalesceWindow time.Duration
	Demo           bool
	DemoMotes      int

	// An existing broker in place of the embedded one (upstream.go).
	Upstream         []string // the nodes of one cluster; none: the embedded broker
	UpstreamProtocol int      // 4 (MQTT 3.1.1) or 5
	UpstreamUser     string
	UpstreamPassword string
	UpstreamCA       string
	UpstreamClientID string
	UpstreamLinger   time.Duration

	// Resume across replicas from a JetStream stream (jetstream.go).
	UpstreamJetStream string
	UpstreamNATS      []string

	// ShowVersion: --version or -v, print the version and exit.
	ShowVersion bool

	explicit map[string]bool // the flags given (command line, environment or file)
}

// flagGroup is a heading of `hub --help` and the flags under it.
type flagGroup struct {
	title string
	names []string
}

var helpGroups = []flagGroup{
	{"Listeners", []string{"http", "mqtt", "mqtts"}},
	{"Security", []string{"users", "allow-anonymous", "allow-origin", "allow-host", "tls-cert", "tls-key", "trusted-proxy"}},
	{"Limits", []string{"max-message-bytes", "rate-limit", "mqtt-rate-limit", "max-connections",
		"max-connections-per-address", "max-subscriptions", "max-state-values", "max-devices", "read-header-timeout", "idle-timeout",
		"mqtt-connect-timeout", "mqtt-max-sessions", "mqtt-session-expiry", "mqtt-max-subscriptions", "mqtt-max-queued"}},
	{"Storage", []string{"data", "data-sync-interval", "max-topics", "recent-messages", "recent-bytes", "history-length"}},
	{"History (numbers and states over time, in --data)", []string{"history-raw", "history-5m", "history-1h", "history-bytes",
		"history-series", "history-topics"}},
	{"Upstream (several hubs in front of an existing MQTT broker or cluster)", []string{"upstream", "upstream-protocol", "upstream-username",
		"upstream-password", "upstream-ca", "upstream-client-id-prefix", "upstream-linger"}},
	{"Resume across replicas (a JetStream stream of the upstream's messages)", []string{"upstream-jetstream", "upstream-nats"}},
	{"Device commands", []string{"ack-timeout"}},
	{"Tuning", []string{"coalesce-window"}},
	{"Demo", []string{"demo", "demo-motes"}},
	{"Logging", []string{"log-level", "log-format"}},
	{"Configuration", []string{"config"}},
}

// repeatable flags take a comma-separated list from the environment.
var repeatable = map[string]bool{"allow-origin": true, "allow-host": true, "trusted-proxy": true, "history-topics": true,
	"upstream-nats": true}

// deprecated flags are old names that still work, with a warning at start
// naming the new one.
var deprecated = map[string]string{"history-length": "recent-messages"}

// commandLineOnly flags have no environment twin and no key in the
// --config file.
var commandLineOnly = map[string]bool{"version": true, "v": true}

// envName is the environment twin of a flag: --allow-origin is HUB_ALLOW_ORIGIN.
func envName(flagName string) string {
	return "HUB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions reads args, then the environment for every flag args did not
// set, then the configuration file (--config or HUB_CONFIG) for every flag
// neither set: flags win over the environment, the environment over the
// file. Repeatable flags take a comma-separated list from the environment
// and an array from the file. --help prints the usage to out and returns
// flag.ErrHelp; --version (or -v) sets ShowVersion and nothing is checked.
// Mistakes are usage errors (exit status 2), except a --config file that
// cannot be read.
func parseOptions(args []string, lookupEnv func(string) (string, bool), out io.Writer) (options, error) {
	var o options
	fs := hubFlags(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, out)
			return o, err
		}
		return o, parseError(err, "hub")
	}
	if o.ShowVersion {
		return o, nil
	}
	if fs.NArg() > 0 {
		if len(args) > 0 && args[0] == fs.Arg(0) {
			return o, usage(fmt.Errorf("unknown command %q: the commands are %s (see hub --help)", fs.Arg(0), commandNames()))
		}
		return o, usage(fmt.Errorf("unexpected argument %q (see hub --help)", fs.Arg(0)))
	}
	if err := fromEnvironmentAndFile(fs, &o, lookupEnv); err != nil {
		return o, err
	}
	if err := o.check(); err != nil {
		return o, usage(err)
	}
	if len(o.Upstream) > 0 { // the devices and their state are the upstream's
		o.MQTTAddr = ""
		if !o.explicit["data"] {
			o.DataDir = "" // given, it holds the replica's own history (docs/scaling.md)
		}
	}
	return o, nil
}

// hubFlags are the hub's flags, writing to o, which they set to the defaults.
func hubFlags(o *options) *flag.FlagSet {
	*o = options{LogLevel: slog.LevelInfo, LogFormat: "text", HTTPAddr: "127.0.0.1:8080", MQTTAddr: "127.0.0.1:1883"}
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, in people's words (parseError); --help is printed by parseOptions
	fs.Usage = func() {}
	fs.Var(listenAddr{addr: &o.HTTPAddr, defaultPort: "8080"}, "http", "`ADDR` (host:port) for HTTP: the dashboard, /ws, /events, /api, /mqtt, /metrics")
	fs.Var(listenAddr{addr: &o.MQTTAddr, defaultPort: "1883", optional: true}, "mqtt", "`ADDR` (host:port) for MQTT over TCP (\"\" turns it off)")
	fs.Func("log-level", "`LEVEL` of logs: debug, info, warn, error (default \"info\")", func(v string) error {
		if err := o.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return errors.New("want debug, info, warn or error")
		}
		return nil
	})
	fs.Func("log-format", "`FORMAT` of logs: text or json (default \"text\")", func(v string) error {
		if v != "text" && v != "json" {
			return errors.New("want text or json")
		}
		o.LogFormat = v
		return nil
	})
	fs.StringVar(&o.ConfigFile, "config", "", "a TOML `FILE` whose keys are these flags' names (http = \"...\"); flags and the environment win over it")
	fs.Func("allow-origin", "`ORIGIN` (scheme://host[:port]) whose pages may open a WebSocket, besides the hub's own (repeatable)",
		func(v string) error {
			o.AllowOrigins = append(o.AllowOrigins, v)
			return nil
		})
	fs.Func("allow-host", "host `NAME` by which browsers may reach the hub, besides localhost and the hosts of --allow-origin "+
		"(others are refused, against DNS rebinding: always on a loopback --http, on any once this is given; repeatable)",
		func(v string) error {
			if v == "" || strings.ContainsAny(v, "/*@ ") {
				return errors.New("want a host name or an IP address, such as hub.lan")
			}
			if _, _, err := net.SplitHostPort(v); err == nil {
				return errors.New("give the name without a port: every port is allowed")
			}
			o.AllowHosts = append(o.AllowHosts, v)
			return nil
		})
	fs.BoolVar(&o.AllowAnonymous, "allow-anonymous", false, "without --users, serve anonymous clients with full access on non-loopback addresses too")
	fs.Var(listenAddr{addr: &o.MQTTSAddr, defaultPort: "8883", optional: true}, "mqtts", "`ADDR` (host:port) for MQTT over TLS (needs --tls-cert and --tls-key)")
	fs.StringVar(&o.UsersFile, "users", "", "`FILE` of users and their rights (TOML, written by hub passwd); reloaded on SIGHUP")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "certificate `FILE` (PEM): serve HTTPS/WSS, and MQTTS; reloaded on SIGHUP")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key `FILE` (PEM) of --tls-cert")
	fs.Func("trusted-proxy", "`CIDR` of a reverse proxy whose X-Forwarded-For names the client, and X-Forwarded-Proto its scheme (repeatable)",
		func(v string) error {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				ip, err2 := netip.ParseAddr(v)
				if err2 != nil {
					return fmt.Errorf("not an address or CIDR: %w", err)
				}
				p = netip.PrefixFrom(ip, ip.BitLen())
			}
			o.TrustedProxies = append(o.TrustedProxies, p)
			return nil
		})
	fs.IntVar(&o.MaxMessageBytes, "max-message-bytes", 64<<10, "largest message a browser may send (`BYTES`); MQTT packets may be 16 times that")
	fs.Float64Var(&o.RateLimit, "rate-limit", 100, "messages per second one browser may send, in bursts of twice that (`N`; negative: no limit)")
	fs.Float64Var(&o.MQTTRateLimit, "mqtt-rate-limit", 1000, "messages per second one MQTT client may publish, in bursts of twice that (`N`; negative: no limit)")
	fs.IntVar(&o.MaxConnections, "max-connections", 10000, "MQTT connections, and browser sessions, in total (`N` each)")
	fs.IntVar(&o.MaxConnectionsPerAddress, "max-connections-per-address", 256, "MQTT connections, and browser sessions, from one IP address (`N` each)")
	fs.IntVar(&o.MaxSubscriptions, "max-subscriptions", 256, "topic filters one browser may subscribe to, or name in one request (`N`)")
	fs.IntVar(&o.MaxStateValues, "max-state-values", 10000, "last values in one answer to /api/state or state/get; more are cut and the answer says \"truncated\" (`N`)")
	fs.IntVar(&o.MaxDevices, "max-devices", devices.DefaultMaxDevices, "devices the hub's device model keeps (/api/devices, the dashboard's cards); discoveries past it are ignored (`N`)")
	fs.DurationVar(&o.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send an HTTP request's headers (`DURATION`)")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", 2*time.Minute, "an idle HTTP keep-alive connection is closed after `DURATION`")
	o.MQTTConnectTimeout, o.MQTTSessionExpiry = 10*time.Second, 24*time.Hour
	fs.Var(positiveDuration{&o.MQTTConnectTimeout}, "mqtt-connect-timeout", "time an MQTT connection has to send its CONNECT before it is closed (`DURATION`)")
	fs.IntVar(&o.MQTTMaxSessions, "mqtt-max-sessions", 10000, "MQTT sessions kept, connected or not; past it a new client ends the session disconnected longest (`N`)")
	fs.Var(positiveDuration{&o.MQTTSessionExpiry}, "mqtt-session-expiry", "how long the session of an MQTT client that went away is kept, and the longest an MQTT 5 client may ask for (`DURATION`)")
	fs.IntVar(&o.MQTTMaxSubscriptions, "mqtt-max-subscriptions", 10000, "topic filters one MQTT client may subscribe to (`N`)")
	fs.IntVar(&o.MQTTMaxQueued, "mqtt-max-queued", 1000, "QoS 1 and 2 messages in flight to or queued for one MQTT session, at most 65535 (`N`)")
	fs.StringVar(&o.DataDir, "data", "./hub-data", "`DIR` where retained messages, persistent sessions, last values and history persist (\"\": memory only)")
	fs.DurationVar(&o.SyncInterval, "data-sync-interval", time.Second, "how often changes are written to --data: a crash loses at most this, "+
		"or two writes' time if one write takes longer than half of it (`DURATION`; logged, see motehub_store_sync_seconds)")
	fs.IntVar(&o.MaxTopics, "max-topics", bridge.DefaultMaxTopics, "topics whose last value and history are kept, in memory and in --data; past it the topic updated least recently goes (`N`)")
	fs.IntVar(&o.RecentMessages, "recent-messages", bridge.DefaultHistoryLength, "recent messages kept per topic, in memory and in --data, for /api/history?topic=&limit= (`N`)")
	fs.Int64Var(&o.RecentBytes, "recent-bytes", bridge.DefaultHistoryBytes, "`BYTES` of last values and recent messages kept, in memory and in --data; past it the topic updated least recently goes")
	fs.Var(intAlias{&o.RecentMessages}, "history-length", "deprecated: the old name of --recent-messages (`N`)")
	historyFlags(fs, o)
	jetstreamFlags(fs, o)
	o.AckTimeout = 5 * time.Second
	fs.Var(positiveDuration{&o.AckTimeout}, "ack-timeout", "`DURATION` a command waits for its device to confirm it before the browser is told it failed")
	fs.DurationVar(&o.CoalesceWindow, "coalesce-window", 2*time.Millisecond, "the longest the hub waits after writing to many browsers at once before it writes again, "+
		"so that each gets fewer, larger writes; writing to few it waits only while messages come faster than one per quarter of it, for about a quarter, or all of it at high rates (`DURATION`; 0: off)")
	fs.BoolVar(&o.Demo, "demo", false, "run simulated motes inside the hub, connected to its own MQTT listener (needs --mqtt)")
	fs.IntVar(&o.DemoMotes, "demo-motes", 3, "how many simulated motes `N` --demo runs")
	fs.Var(upstreamURLs{&o.Upstream}, "upstream", "`URL` of an MQTT broker or cluster to use instead of the embedded broker: mqtt://, mqtts://, ws:// or wss://, credentials allowed (user:password@host); "+
		"several nodes of one cluster, comma-separated or repeated, are used one at a time with failover; turns off --mqtt, and --data unless given (then it holds only this replica's history)")
	fs.Func("upstream-protocol", "`VERSION` of MQTT spoken to --upstream: 4 (MQTT 3.1.1) or 5, which carries commands' correlation data and takes $share/ subscriptions; "+
		"mqtt5:// and mqtt5s:// URLs say 5 too (default 4)", func(v string) error {
		switch v {
		case "4", "3.1.1":
			o.UpstreamProtocol = 4
		case "5", "5.0":
			o.UpstreamProtocol = 5
		default:
			return errors.New("want 4 (MQTT 3.1.1) or 5")
		}
		return nil
	})
	fs.StringVar(&o.UpstreamUser, "upstream-username", "", "`USER` to connect to --upstream as (wins over the URL's)")
	fs.StringVar(&o.UpstreamPassword, "upstream-password", "", "`PASSWORD` of --upstream-username; prefer the environment, which other users of the machine cannot see")
	fs.StringVar(&o.UpstreamCA, "upstream-ca", "", "`FILE` of CA certificates (PEM) that --upstream's certificate must chain to (default: the system's)")
	fs.StringVar(&o.UpstreamClientID, "upstream-client-id-prefix", "motehub-", "`PREFIX` of the hub's MQTT client id upstream; 12 random characters follow")
	fs.DurationVar(&o.UpstreamLinger, "upstream-linger", 30*time.Second, "how long the hub stays subscribed upstream to topics no client watches any more, so that a page reload resumes (`DURATION`)")
	fs.BoolVar(&o.ShowVersion, "version", false, "print the version and exit")
	fs.BoolVar(&o.ShowVersion, "v", false, "print the version and exit")
	explainValues(fs)
	return fs
}

// fromEnvironmentAndFile sets, from the environment and then the --config
// file, the flags of fs that args did not set.
func fromEnvironmentAndFile(fs *flag.FlagSet, o *options, lookupEnv func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		value, ok := lookupEnv(envName(f.Name))
		if set[f.Name] || !ok || commandLineOnly[f.Name] {
			return
		}
		set[f.Name] = true
		values := []string{value}
		if repeatable[f.Name] {
			values = strings.Split(value, ",")
		}
		for _, v := range values {
			if err := fs.Set(f.Name, strings.TrimSpace(v)); err != nil {
				errs = append(errs, fmt.Errorf("%s%s: %w", envName(f.Name), quoted(f.Name, value), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return usage(err)
	}
	if o.ConfigFile != "" {
		if err := applyConfigFile(fs, o.ConfigFile, set); err != nil {
			return err
		}
	}
	o.explicit = set
	return nil
}

// applyConfigFile sets, from a TOML file, every flag not set already. Its
// keys are the flags' names; an unknown key or a bad value is refused,
// naming it, as a usage error; a file that cannot be read is not one.
func applyConfigFile(fs *flag.FlagSet, path string, set map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return usage(applyConfig(fs, path, data, set))
}

// applyConfig sets the flags of a --config file's content.
func applyConfig(fs *flag.FlagSet, path string, data []byte, set map[string]bool) error {
	var keys map[string]any
	if _, err := toml.Decode(string(data), &keys); err != nil {
		return fmt.Errorf("config file %s: %w", path, tomltext.Error(err))
	}
	for _, name := range slices.Sorted(maps.Keys(keys)) {
		if _, table := keys[name].(map[string]any); table {
			return fmt.Errorf("config file %s: [%s] is a table; the file has no tables, write every key at the top", path, name)
		}
		f := fs.Lookup(name)
		if f == nil || name == "config" || commandLineOnly[name] {
			return fmt.Errorf("config file %s: unknown key %q; the keys are the flags of hub --help without their dashes, such as http, mqtt, users", path, name)
		}
		var values []string
		switch v := keys[name].(type) {
		case []any:
			if !repeatable[name] {
				return fmt.Errorf("config file %s: key %q takes one value, not a list", path, name)
			}
			for _, item := range v {
				values = append(values, fmt.Sprint(item))
			}
		default:
			values = []string{fmt.Sprint(v)}
		}
		if set[name] {
			continue // the command line or the environment said it already
		}
		for _, v := range values {
			if err := fs.Set(name, v); err != nil && secretFlags[name] {
				return fmt.Errorf("config file %s: key %q: %w", path, name, err)
			} else if err != nil {
				return fmt.Errorf("config file %s: key %q = %q: %w", path, name, v, err)
			}
		}
		set[name] = true
	}
	return nil
}

// check refuses combinations that cannot work, naming the flags.
func (o options) check() error {
	switch {
	case (o.TLSCert == "") != (o.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case o.MQTTSAddr != "" && o.TLSCert == "":
		return errors.New("--mqtts needs --tls-cert and --tls-key")
	case o.MaxMessageBytes < 1024:
		return fmt.Errorf("--max-message-bytes %d: at least 1024", o.MaxMessageBytes)
	case o.MaxConnections < 1 || o.MaxConnectionsPerAddress < 1 || o.MaxSubscriptions < 1 || o.MaxStateValues < 1 || o.MaxDevices < 1:
		return errors.New("--max-connections, --max-connections-per-address, --max-subscriptions, --max-state-values and --max-devices are at least 1")
	case o.CoalesceWindow < 0 || o.CoalesceWindow > time.Second:
		return fmt.Errorf("--coalesce-window %v: between 0 (off) and 1s", o.CoalesceWindow)
	case o.MQTTMaxSessions < 1 || o.MQTTMaxSubscriptions < 1 || o.MQTTMaxQueued < 1 || o.MQTTMaxQueued > 65535:
		return errors.New("--mqtt-max-sessions and --mqtt-max-subscriptions are at least 1, --mqtt-max-queued between 1 and 65535")
	case o.MQTTMaxSessions < o.MaxConnections:
		return fmt.Errorf("--mqtt-max-sessions %d is below --max-connections %d: every connected MQTT client holds a session", o.MQTTMaxSessions, o.MaxConnections)
	case o.ReadHeaderTimeout <= 0 || o.IdleTimeout <= 0:
		return errors.New("--read-header-timeout and --idle-timeout must be positive")
	case o.MaxTopics < 1 || o.RecentMessages < 1:
		return errors.New("--max-topics and --recent-messages are at least 1")
	case o.RecentBytes < 1<<10:
		return fmt.Errorf("--recent-bytes %d: at least 1024", o.RecentBytes)
	case o.SyncInterval <= 0 || o.SyncInterval > time.Minute:
		return fmt.Errorf("--data-sync-interval %v: between 0 and 1m", o.SyncInterval)
	case o.Demo && len(o.Upstream) == 0 && o.MQTTAddr == "":
		return errors.New(`--demo needs the MQTT listener: the simulated motes connect to the hub over MQTT, like real devices. ` +
			`Give --mqtt an address (the default is 127.0.0.1:1883), not ""`)
	case o.checkHistory() != nil:
		return o.checkHistory()
	case o.checkJetStream() != nil:
		return o.checkJetStream()
	case o.Demo && o.DemoMotes < 1:
		return fmt.Errorf("--demo-motes %d: want at least 1", o.DemoMotes)
	case o.Demo && demoClients(o) > min(o.MaxConnectionsPerAddress, o.MaxConnections):
		return fmt.Errorf("--demo-motes %d: the demo's %d MQTT clients all connect from the hub's own address, more than "+
			"--max-connections-per-address %d or --max-connections %d let in; raise them to at least %d",
			o.DemoMotes, demoClients(o), o.MaxConnectionsPerAddress, o.MaxConnections, demoClients(o))
	case len(o.Upstream) == 0:
		return nil
	case o.explicit["mqtt"] && o.MQTTAddr != "" || o.MQTTSAddr != "":
		return errors.New("--upstream and --mqtt or --mqtts do not go together: with --upstream, devices connect to the upstream broker")
	case o.Demo:
		return errors.New("--demo runs its motes on the embedded broker, which --upstream turns off; run cmd/motesim against the upstream broker instead")
	case o.UpstreamLinger <= 0:
		return fmt.Errorf("--upstream-linger %v: must be positive", o.UpstreamLinger)
	}
	return nil
}

// printUsage is hub --help: the commands, then the flags by group.
func printUsage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprint(out, "Usage: hub [flags]\n       hub COMMAND [flags]\n\n"+
		"motehub: MQTT devices in front of browsers. Without a command, hub serves:\n"+
		"the MQTT broker, the dashboard and the browsers' WebSocket, SSE and REST API.\n\n")
	printCommands(out)
	fmt.Fprint(out, "\nEvery flag has an environment twin (--http is HUB_HTTP) and a key in the\n"+
		"--config file (http = \"...\"). -h or --help shows this; -v or --version\n"+
		"prints the version.\n")
	for _, g := range helpGroups {
		fmt.Fprintf(out, "\n%s:\n", g.title)
		for _, name := range g.names {
			printFlag(out, fs.Lookup(name), envName(name))
		}
	}
}

// checkExposure refuses to serve anonymous clients with full access on an
// address other machines can reach, unless --allow-anonymous says so (as
// Mosquitto 2 does). With --users, every client is checked against the file.
func checkExposure(o options) error {
	if o.AllowAnonymous || o.UsersFile != "" {
		return nil
	}
	if exposed := o.exposedListeners(); len(exposed) > 0 {
		return fmt.Errorf("%s is not a loopback address: anyone who can reach it could read and command every device. "+
			"Give users with --users (see hub passwd), listen on 127.0.0.1, or pass --allow-anonymous to accept that", exposed[0])
	}
	return nil
}

// anonymousExposure is what the WARN line at start says when
// --allow-anonymous lets anonymous clients in with full access on
// addresses other machines can reach: those listeners, or nil.
func anonymousExposure(o options) []string {
	if !o.AllowAnonymous || o.UsersFile != "" {
		return nil
	}
	return o.exposedListeners()
}

// exposedListeners are the listeners given an address that is not a
// loopback one, as "--flag addr".
func (o options) exposedListeners() []string {
	var exposed []string
	for _, l := range []struct{ flag, addr string }{{"--http", o.HTTPAddr}, {"--mqtt", o.MQTTAddr}, {"--mqtts", o.MQTTSAddr}} {
		if l.addr != "" && !isLoopback(l.addr) {
			exposed = append(exposed, l.flag+" "+l.addr)
		}
	}
	return exposed
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// positiveDuration is a flag.Value for a time.Duration that must be above zero.
type positiveDuration struct{ d *time.Duration }

func (p positiveDuration) String() string {
	if p.d == nil {
		return ""
	}
	return p.d.String()
}

func (p positiveDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 500ms or 5s")
	}
	if d <= 0 {
		return errors.New("must be above zero")
	}
	*p.d = d
	return nil
}
