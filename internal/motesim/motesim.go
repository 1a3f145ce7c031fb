package motesim

import (
	"context"
	"strings"
	"sync"
)

// Run simulates cfg.Motes motes, and one device of each convention in
// cfg.Devices, connected to cfg.Broker until ctx ends. It returns an error
// at once for a Config it cannot run (wrapping [ErrBadConfig]); otherwise it
// returns nil once ctx is done and every mote and device has stopped: its
// goroutine ended, its MQTT client disconnected (a device says goodbye
// first), and none of its callbacks running. A broker that cannot be
// reached is not an error: they keep trying, and heal by themselves after
// the broker restarts.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.normalize(); err != nil {
		return err
	}
	log := cfg.Logger.With("component", "motesim")
	devices := make([]*conventionDevice, 0, len(cfg.Devices))
	for i, name := range cfg.Devices {
		conv, err := newConvention(name, &cfg, i)
		if err != nil { // normalize checked the names
			return err
		}
		devices = append(devices, newConventionDevice(&cfg, conv, log))
	}
	log.Info("starting motes", "motes", cfg.Motes, "devices", strings.Join(cfg.Devices, ","),
		"broker", cfg.Broker, "prefix", cfg.Prefix, "user", cfg.Username, "seed", cfg.Seed)
	var wg sync.WaitGroup
	for n := 1; n <= cfg.Motes; n++ {
		m := newMote(&cfg, n, log)
		wg.Go(func() { m.run(ctx) })
	}
	for _, d := range devices {
		wg.Go(func() { d.run(ctx) })
	}
	wg.Wait()
	log.Info("motes stopped", "motes", cfg.Motes, "devices", len(devices))
	return nil
}
