package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/motehub/motehub/internal/motesim"
)

// hub --demo runs simulated motes (package internal/motesim) inside the hub,
// as real MQTT clients of its own MQTT listener, so that the dashboard shows
// a living system without hardware: temperatures, counters, relays and an
// LED that obey commands and echo their state.

// demoTemperatureInterval is faster than the simulator's default (2 s), so
// that the charts of a fresh dashboard fill within seconds.
const demoTemperatureInterval = time.Second

// startDemo starts opts.DemoMotes simulated motes connected to the hub's MQTT
// listener at mqttAddr (nil when --mqtt is ""). It returns the stop for run's
// list: it ends the motes and waits until they have disconnected, so it must
// run before the broker closes. Call it once the broker admits clients.
func startDemo(opts options, mqttAddr net.Addr, log *slog.Logger) (stop func(context.Context) error, err error) {
	if mqttAddr == nil { // options.check refuses --demo without --mqtt
		return nil, errors.New("--demo: no MQTT listener")
	}
	broker := dialable(mqttAddr)
	cfg := motesim.Config{
		Broker:              "tcp://" + broker,
		Motes:               opts.DemoMotes,
		TemperatureInterval: demoTemperatureInterval,
		Logger:              log,
	}
	// Not derived from run's context: the motes stop when their turn in
	// run's stops comes, not as soon as the hub is told to stop.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- motesim.Run(ctx, cfg) }()
	log.Info("demo on: simulated motes publish under "+motesim.DefaultPrefix+"/", "motes", opts.DemoMotes, "broker", "mqtt://"+broker)

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
