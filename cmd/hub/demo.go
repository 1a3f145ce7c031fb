package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/motesim"
)

// hub --demo runs simulated motes (package internal/motesim) inside the hub,
// as real MQTT clients of its own MQTT listener, so that the dashboard shows
// a living system without hardware: temperatures, counters, relays and an
// LED that obey commands and echo their state; and next to them one device
// of each convention the hub understands (a Home Assistant discovery sensor
// and switch, a Zigbee2MQTT bulb, a Tasmota plug, a Homie thermostat).

// demoUser is the user the simulated motes log in as when the hub enforces
// a users file: built in (auth.Authorizer.AddBuiltIn), with a random
// password made at each start and kept in memory, and the right to read and
// write the simulator's topics only (motesim.Filters). A users file may not
// define the name.
const demoUser = "hub-demo"

// demoLogin is what the motes send in CONNECT; zero without a users file.
type demoLogin struct{ user, password string }

// addDemoUser adds the motes' user to authz, which enforces a users file.
func addDemoUser(authz *auth.Authorizer) (demoLogin, error) {
	filters, err := motesim.Filters(demoConfig(options{}, "", demoLogin{}, nil))
	if err != nil {
		return demoLogin{}, fmt.Errorf("--demo: %w", err)
	}
	rules := make([]auth.Rule, 0, len(filters))
	for _, f := range filters {
		rules = append(rules, auth.Rule{Filter: f, Access: auth.Read | auth.Write})
	}
	password, hash := auth.NewSecret()
	err = authz.AddBuiltIn(&auth.User{Name: demoUser, PasswordHash: hash, Rules: rules})
	if err != nil {
		return demoLogin{}, fmt.Errorf("--demo: the simulated motes log in as %q: %w", demoUser, err)
	}
	return demoLogin{user: demoUser, password: password}, nil
}

// demoClients is how many MQTT clients --demo connects: one per mote and one
// per device of another convention.
func demoClients(o options) int { return o.DemoMotes + len(motesim.DeviceNames()) }

// demoTemperatureInterval is faster than the simulator's default (2 s), so
// that the charts of a fresh dashboard fill within seconds.
const demoTemperatureInterval = time.Second

// demoReportInterval is how often the devices of other conventions report,
// faster than the simulator's default (5 s) for the same reason.
const demoReportInterval = 2 * time.Second

// demoConfig is the simulator's Config for --demo; the motes' user is given
// the topics of exactly this Config.
func demoConfig(opts options, broker string, login demoLogin, log *slog.Logger) motesim.Config {
	return motesim.Config{
		Broker:              broker,
		Motes:               opts.DemoMotes,
		TemperatureInterval: demoTemperatureInterval,
		ReportInterval:      demoReportInterval,
		Username:            login.user,
		Password:            login.password,
		Logger:              log,
	}
}

// startDemo starts opts.DemoMotes simulated motes connected to the hub's MQTT
// listener at mqttAddr (nil when --mqtt is ""), logging in with login (zero:
// anonymously). It returns the stop for run's list: it ends the motes and
// waits until they have disconnected, so it must run before the broker
// closes. Call it once the broker admits clients.
func startDemo(opts options, mqttAddr net.Addr, login demoLogin, log *slog.Logger) (stop func(context.Context) error, err error) {
	if mqttAddr == nil { // options.check refuses --demo without --mqtt
		return nil, errors.New("--demo: no MQTT listener")
	}
	broker := dialable(mqttAddr)
	cfg := demoConfig(opts, "tcp://"+broker, login, log)
	// Not derived from run's context: the motes stop when their turn in
	// run's stops comes, not as soon as the hub is told to stop.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- motesim.Run(ctx, cfg) }()
	log.Info("demo on: simulated motes publish under "+motesim.DefaultPrefix+"/", "motes", opts.DemoMotes, "broker", "mqtt://"+broker)
	log.Info("demo on: one simulated device of each convention", "devices", strings.Join(motesim.DeviceNames(), ","))
	if login.user != "" {
		filters, _ := motesim.Filters(cfg) // addDemoUser checked this Config's
		log.Info("the simulated motes log in as a built-in user, with a password made for this run", "user", login.user, "may", "read and write "+strings.Join(filters, " "))
	}

	return func(stopCtx context.Context) error {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			return nil
		case <-stopCtx.Done():
			return fmt.Errorf("demo: the simulated motes did not stop in time: %w", stopCtx.Err())
		}
	}, nil
}

// dialable is the host:port a local client reaches a listener on: a
// listener on every address (0.0.0.0, ::) is reached on loopback.
func dialable(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil || !ap.Addr().IsUnspecified() {
		return addr.String()
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	if ap.Addr().Is6() {
		loopback = netip.IPv6Loopback()
	}
	return netip.AddrPortFrom(loopback, ap.Port()).String()
}
