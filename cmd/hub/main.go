// Command hub runs motehub: an MQTT broker for devices and, on one HTTP port,
// the Clown.Talk WebSocket for browsers. See README.md and `hub --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/web"
)

// shutdownTimeout bounds everything the hub does after it is told to stop.
const shutdownTimeout = 8 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal ends the process the default way
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hub:", err)
		os.Exit(1)
	}
}

// run is the whole hub: it serves until ctx ends, then drains and returns.
// Logs go to stdout; once every listener is bound it logs one "listening"
// line per listener with its real address, then "ready".
func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	opts, err := parseOptions(args, os.LookupEnv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkExposure(opts); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: opts.LogLevel}))

	// Everything started is stopped in reverse order, within shutdownTimeout.
	var stops []func(context.Context) error
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			err = errors.Join(err, stops[i](sctx))
		}
		log.Info("stopped")
	}()

	mqttBroker, err := broker.Start(broker.Config{Addr: opts.MQTTAddr, Logger: log})
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: is another MQTT broker (a system mosquitto?) running there? Stop it, or choose another address with --mqtt", err)
	}
	if err != nil {
		return err
	}
	stops = append(stops, mqttBroker.Close)
	if a := mqttBroker.Addr(); a != nil {
		log.Info("listening", "proto", "mqtt", "addr", a.String(), "url", "mqtt://"+a.String())
	}

	// The HTTP socket is bound before the hub exists, so that the stops, run
	// in reverse, go: stop taking connections (EventSource gives up for good
	// on an error status, but retries a refused connection), end the hub's
	// sessions (which Shutdown waits for), wait for the HTTP server, and close
	// the broker last.
	ln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		hint := ""
		if errors.Is(err, syscall.EADDRINUSE) {
			hint = ": choose another address with --http"
		}
		return fmt.Errorf("listen for HTTP on %s: %w%s", opts.HTTPAddr, err, hint)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	shutdownErr := make(chan error, 1)
	served := false
	stops = append(stops, func(context.Context) error {
		if !served {
			return ln.Close()
		}
		err := <-shutdownErr
		if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	})

	hub, err := bridge.New(mqttBroker, bridge.Config{AllowedOrigins: opts.AllowOrigins, AckTimeout: opts.AckTimeout, Logger: log})
	if err != nil {
		return err
	}
	stops = append(stops, hub.Close)
	mqttBroker.Open() // devices in only once the hub listens

	// --demo: simulated motes, stopped before the hub and the broker (demo.go).
	if opts.Demo {
		stopDemo, err := startDemo(opts, mqttBroker.Addr(), log)
		if err != nil {
			return err
		}
		stops = append(stops, stopDemo)
	}

	var ready atomic.Bool
	stops = append(stops, func(ctx context.Context) error {
		ready.Store(false) // first thing on the way down: stop taking traffic
		log.Info("shutting down")
		if served {
			go func() { shutdownErr <- srv.Shutdown(ctx) }() // closes the listener at once
		}
		return nil
	})
	srv.Handler = web.New(hub, web.Config{
		Logger: log,
		Checks: []web.Check{{Name: "hub", Ready: func() error {
			if !ready.Load() {
				return errors.New("starting or stopping")
			}
			return nil
		}}},
	})
	served = true
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "proto", "http", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/")
	ready.Store(true)
	log.Info("ready")

	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		serveErr <- err // for the stop above
		return fmt.Errorf("http server: %w", err)
	}
}
