package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/motehub/motehub/internal/motesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal ends the process the default way
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "motesim: ") { // the library's errors say it already
			msg = "motesim: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// run simulates the motes until ctx ends. Logs and --help go to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, level, err := parseFlags(args, out)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	return motesim.Run(ctx, cfg)
}

// parseFlags turns the command line into a motesim.Config and a log level.
func parseFlags(args []string, out io.Writer) (motesim.Config, slog.Level, error) {
	var cfg motesim.Config
	level := slog.LevelInfo
	fs := flag.NewFlagSet("motesim", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.Broker, "broker", motesim.DefaultBroker, "`URL` of the MQTT broker (tcp://host:port; a bare host:port is tcp)")
	fs.IntVar(&cfg.Motes, "motes", motesim.DefaultMotes, "how many motes: mote-1 … mote-`N`")
	fs.StringVar(&cfg.Prefix, "prefix", motesim.DefaultPrefix, "`TOPIC` every mote's topics are under")
	fs.DurationVar(&cfg.ASNInterval, "asn-interval", motesim.DefaultASNInterval, "how often each mote publishes its ASN")
	fs.DurationVar(&cfg.TemperatureInterval, "temperature-interval", motesim.DefaultTemperatureInterval, "how often each mote publishes its temperature")
	fs.DurationVar(&cfg.PIRInterval, "pir-interval", motesim.DefaultPIRInterval, "mean time between two PIR events of a mote")
	fs.Func("devices", "comma-separated `NAMES` of the devices of other conventions to run next to the motes: "+
		strings.Join(motesim.DeviceNames(), ", ")+"; none for the motes only (default all)", func(v string) error {
		cfg.Devices, cfg.NoDevices = nil, v == "none"
		if !cfg.NoDevices {
			cfg.Devices = strings.Split(v, ",")
		}
		return nil
	})
	fs.DurationVar(&cfg.ReportInterval, "report-interval", motesim.DefaultReportInterval, "how often those devices report their readings")
	fs.DurationVar(&cfg.MaxReconnectInterval, "max-reconnect-interval", motesim.DefaultMaxReconnectInterval, "longest wait between two attempts to reach the broker")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "`N` makes the readings repeatable (0: random, logged at start)")
	fs.TextVar(&level, "log-level", slog.LevelInfo, "`LEVEL` of logs: debug, info, warn, error")
	fs.Usage = func() { usage(fs, out) }
	if err := fs.Parse(args); err != nil {
		return cfg, level, err
	}
	if fs.NArg() > 0 {
		return cfg, level, fmt.Errorf("unexpected argument %q (see motesim --help)", fs.Arg(0))
	}
	if cfg.Motes < 1 {
		return cfg, level, fmt.Errorf("--motes %d: want at least 1", cfg.Motes)
	}
	return cfg, level, nil
}

func usage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintf(out, "Usage: motesim [flags]\n\nSimulated motes over MQTT: ASN, temperature, PIR, two relays and an LED that obey .../set;\nand one device of each convention: a Home Assistant discovery sensor and switch, a Zigbee2MQTT bulb,\na Tasmota plug, a Homie thermostat.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		arg, text := flag.UnquoteUsage(f)
		fmt.Fprintf(out, "  --%s %s\n      %s", f.Name, arg, text)
		if f.DefValue != "" && f.DefValue != "0" {
			fmt.Fprintf(out, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(out)
	})
}
