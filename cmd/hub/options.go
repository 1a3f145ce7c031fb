package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// options is everything the command line and the environment decide.
type options struct {
	HTTPAddr       string
	MQTTAddr       string
	LogLevel       slog.Level
	AllowOrigins   []string
	AllowAnonymous bool

	// Command confirmation, and the simulated motes of --demo (demo.go).
	AckTimeout time.Duration
	Demo       bool
	DemoMotes  int
}

// flagGroup is a heading of `hub --help` and the flags under it.
type flagGroup struct {
	title string
	names []string
}

var helpGroups = []flagGroup{
	{"Listeners", []string{"http", "mqtt"}},
	{"Security", []string{"allow-anonymous", "allow-origin"}},
	{"Logging", []string{"log-level"}},
	{"Commands", []string{"ack-timeout"}},
	{"Demo", []string{"demo", "demo-motes"}},
}

// envName is the environment twin of a flag: --allow-origin is HUB_ALLOW_ORIGIN.
func envName(flagName string) string {
	return "HUB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions reads args, then the environment for every flag args did not
// set: flags win over the environment. Repeatable flags take a
// comma-separated list from the environment. --help prints the usage to out
// and returns flag.ErrHelp.
func parseOptions(args []string, lookupEnv func(string) (string, bool), out io.Writer) (options, error) {
	o := options{LogLevel: slog.LevelInfo}
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.HTTPAddr, "http", "127.0.0.1:8080", "`ADDR` for HTTP: the page, /ws, /healthz, /readyz")
	fs.StringVar(&o.MQTTAddr, "mqtt", "127.0.0.1:1883", "`ADDR` for MQTT over TCP (\"\" turns it off)")
	fs.TextVar(&o.LogLevel, "log-level", slog.LevelInfo, "`LEVEL` of logs: debug, info, warn, error")
	fs.Func("allow-origin", "`ORIGIN` (scheme://host[:port]) whose pages may open a WebSocket, besides the hub's own (repeatable)",
		func(v string) error {
			o.AllowOrigins = append(o.AllowOrigins, v)
			return nil
		})
	fs.BoolVar(&o.AllowAnonymous, "allow-anonymous", false, "serve anonymous clients on non-loopback addresses too")
	o.AckTimeout = 5 * time.Second
	fs.Var(positiveDuration{&o.AckTimeout}, "ack-timeout", "`DURATION` a command waits for its device to confirm it before the browser is told it failed")
	fs.BoolVar(&o.Demo, "demo", false, "run simulated motes inside the hub, connected to its own MQTT listener (needs --mqtt)")
	fs.IntVar(&o.DemoMotes, "demo-motes", 3, "how many simulated motes `N` --demo runs")
	fs.Usage = func() { usage(fs, out) }

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see hub --help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		value, ok := lookupEnv(envName(f.Name))
		if set[f.Name] || !ok {
			return
		}
		values := []string{value}
		if f.Name == "allow-origin" {
			values = strings.Split(value, ",")
		}
		for _, v := range values {
			if err := fs.Set(f.Name, strings.TrimSpace(v)); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), value, err))
			}
		}
	})
	return o, errors.Join(errs...)
}

func usage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintf(out, "Usage: hub [flags]\n\nmotehub: MQTT devices in front of browsers. Every flag has an environment twin (--http is HUB_HTTP).\n")
	for _, g := range helpGroups {
		fmt.Fprintf(out, "\n%s:\n", g.title)
		for _, name := range g.names {
			f := fs.Lookup(name)
			arg, text := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s %s\n      %s", f.Name, arg, text)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintf(out, " [%s]\n", envName(f.Name))
		}
	}
}

// checkExposure refuses to serve anonymous clients on an address other
// machines can reach, unless --allow-anonymous says so (as Mosquitto 2 does).
func checkExposure(o options) error {
	if o.AllowAnonymous {
		return nil
	}
	for _, l := range []struct{ flag, addr string }{{"--http", o.HTTPAddr}, {"--mqtt", o.MQTTAddr}} {
		if l.addr == "" || isLoopback(l.addr) {
			continue
		}
		return fmt.Errorf("%s %s is not a loopback address: anyone who can reach it could read and command every device. "+
			"Listen on 127.0.0.1, or pass --allow-anonymous to accept that", l.flag, l.addr)
	}
	return nil
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
