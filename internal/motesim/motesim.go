package motesim

import (
	"context"
	"sync"
)

// Run simulates cfg.Motes motes connected to cfg.Broker until ctx ends. It
// returns an error at once for a Config it cannot run (wrapping
// [ErrBadConfig]); otherwise it returns nil once ctx is done and every mote
// has stopped: its goroutine ended, its MQTT client disconnected, and none of
// its callbacks running. A broker that cannot be reached is not an error: the
// motes keep trying, and heal by themselves after the broker restarts.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.normalize(); err != nil {
		return err
	}
	log := cfg.Logger.With("component", "motesim")
	log.Info("starting motes", "motes", cfg.Motes, "broker", cfg.Broker, "prefix", cfg.Prefix, "user", cfg.Username, "seed", cfg.Seed)
	var wg sync.WaitGroup
	for n := 1; n <= cfg.Motes; n++ {
		m := newMote(&cfg, n, log)
		wg.Go(func() { m.run(ctx) })
	}
	wg.Wait()
	log.Info("motes stopped", "motes", cfg.Motes)
	return nil
}
