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
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/refusals"
	"github.com/motehub/motehub/web"
)

// shutdownTimeout bounds everything the hub does after it is told to stop.
const shutdownTimeout = 8 * time.Second

func main() { os.Exit(hubMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is the whole hub: it serves until ctx ends, then drains and returns.
// Logs go to stdout; once every listener is bound it logs one "listening"
// line per listener with its real address, then "ready". SIGHUP reloads the
// users file and the TLS certificate.
func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	opts, err := parseOptions(args, os.LookupEnv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if opts.ShowVersion {
		fmt.Fprintln(stdout, version())
		return nil
	}
	if err := checkExposure(opts); err != nil {
		return usage(err)
	}
	log := newLogger(opts, stdout)
	warnDeprecated(opts, log.Warn)
	if exposed := anonymousExposure(opts); exposed != nil {
		log.Warn("anyone who can reach the hub can read and command every device, without a password: "+
			"--allow-anonymous on an address other machines can reach; give users with --users (see hub passwd)",
			"listeners", strings.Join(exposed, ", "))
	}
	logOpenFileLimit(log, opts.MaxConnections, opts.explicit["max-connections"]) // fdlimit_unix.go: each connection holds an open file
	sec, err := loadSecurity(opts)
	if err != nil {
		return err
	}

	// Everything started is stopped in reverse order, within shutdownTimeout.
	var stops stopList
	defer func() {
		err = errors.Join(err, stops.stopAll(ctx))
		log.Info("stopped")
	}()
	sec.refusals = refusals.New(refusals.Config{Logger: log})
	stops.add(func(context.Context) error { sec.refusals.Close(); return nil }) // last: its summaries after every door's

	mq, err := openMQTTSide(opts, sec, log, &stops)
	if err != nil {
		return err
	}
	// The HTTP socket is bound before the hub exists, so that the stops, run
	// in reverse, go: stop taking connections (EventSource gives up for good
	// on an error status, but retries a refused connection), end the hub's
	// sessions (which Shutdown waits for), wait for the HTTP server, and close
	// the broker last.
	hs, err := listenHTTP(opts, sec, log, &stops)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	hub, err := bridge.New(mq.bus, hubConfig(opts, sec, mq, log))
	if err != nil {
		return err
	}
	stops.add(hub.Close)
	if err := mq.letIn(hub); err != nil {
		return err
	}

	// --demo: simulated motes, stopped before the hub and the broker (demo.go).
	if opts.Demo {
		stopDemo, err := startDemo(opts, mq.broker.Addr(), sec.demo, log)
		if err != nil {
			return err
		}
		stops.add(stopDemo)
	}

	stops.add(func(ctx context.Context) error {
		ready.Store(false) // first thing on the way down: stop taking traffic
		log.Info("shutting down")
		hs.shutdown(ctx)
		return nil
	})
	checks := readiness(&ready, mq)
	hs.serve(web.New(hub, webConfig(opts, sec, mq, hs.ln, checks, log)))
	log.Info("listening", "proto", hs.scheme, "addr", hs.ln.Addr().String(), "url", hs.scheme+"://"+hs.ln.Addr().String()+"/")

	stopReloads := reloadOnSIGHUP(opts, sec, mq.broker, hub, log)
	stops.add(func(context.Context) error { stopReloads(); return nil })
	ready.Store(true)
	// "ready" only when /readyz says so: an upstream broker may be down.
	if awaitReady(ctx, hs, checks, mq.readinessNames(opts), textOut(opts, stdout), log) {
		announce(opts, sec, mq, hs, stdout, log)
	}
	return hs.waitForEnd(ctx)
}

// textOut is where a person reads the banner: stdout with text logs, nil
// with JSON logs (which are for machines).
func textOut(opts options, stdout io.Writer) io.Writer {
	if opts.LogFormat != "text" {
		return nil
	}
	return stdout
}

// newLogger is the hub's logger: text or JSON lines on stdout.
func newLogger(opts options, stdout io.Writer) *slog.Logger {
	var handler slog.Handler = slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: opts.LogLevel})
	if opts.LogFormat == "json" {
		handler = slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: opts.LogLevel})
	}
	return slog.New(handler)
}

// stopList is what run started, each with its stop.
type stopList []func(context.Context) error

func (s *stopList) add(stop func(context.Context) error) { *s = append(*s, stop) }

// stopAll stops everything, the last started first, within shutdownTimeout
// (even when ctx has ended: it is why we stop).
func (s stopList) stopAll(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	var err error
	for i := len(s) - 1; i >= 0; i-- {
		err = errors.Join(err, s[i](sctx))
	}
	return err
}

// mqttSide is the MQTT side of the hub: the embedded broker (with its
// store), or an upstream one; and the history, in the store.
type mqttSide struct {
	store   *broker.Store     // nil without --data
	history *history.Recorder // nil without --data, or with --history-bytes 0, or damaged
	// historyOff says why the hub keeps no history this run though the
	// flags ask for it: its part of the store file is damaged.
	historyOff error
	broker     *broker.Embedded // nil with --upstream
	up         *upstream        // nil without
	feed       *jetstreamFeed   // nil without --upstream-jetstream
	bus        bridge.Bus
}

// openMQTTSide opens the store of --data with the history in it, and
// connects to the upstream broker or starts the embedded broker, which
// admits no device yet (see letIn). With --upstream the store holds only
// the replica's history.
func openMQTTSide(opts options, sec security, log *slog.Logger, stops *stopList) (mqttSide, error) {
	var mq mqttSide
	mq.history = newRecorder(opts, log)
	store, err := openStore(opts, mq.history, log, stops)
	if err != nil {
		return mq, err
	}
	mq.store = store
	if mq.history != nil {
		if err := store.PartErr(mq.history); err != nil {
			mq.history, mq.historyOff = nil, historyDamaged(opts, err)
			log.Warn("history off for this run: its part of the store file is damaged; the rest of the hub works", "err", mq.historyOff)
		}
	}
	if len(opts.Upstream) > 0 {
		up, err := connectUpstream(opts, log)
		if err != nil {
			return mq, err
		}
		stops.add(up.remote.Close) // after the hub
		mq.up, mq.bus = up, up.remote
		if opts.UpstreamJetStream != "" {
			feed, err := openJetStream(opts, log)
			if err != nil {
				return mq, err
			}
			stops.add(feed.close) // after the hub
			mq.feed, mq.bus = feed, broker.FeedBus{Feed: feed.feed, Remote: up.remote}
		}
		return mq, nil
	}
	b, err := startBroker(opts, sec, store, log)
	if err != nil {
		return mq, err
	}
	stops.add(b.Close)
	mq.broker, mq.bus = b, b
	return mq, nil
}

// openStore opens the store of --data, with rec (nil: no history) as one of
// its parts; nil without --data.
func openStore(opts options, rec *history.Recorder, log *slog.Logger, stops *stopList) (*broker.Store, error) {
	if opts.DataDir == "" {
		return nil, nil
	}
	cfg := broker.StoreConfig{
		SyncInterval: opts.SyncInterval, Logger: log,
		// The same bounds as the hub's: disk and memory hold the same topics.
		MaxTopics: opts.MaxTopics, HistoryLength: opts.RecentMessages, HistoryBytes: opts.RecentBytes,
	}
	if rec != nil {
		cfg.Parts = []broker.StorePart{rec}
	}
	store, err := broker.OpenStore(opts.DataDir, cfg)
	if err != nil {
		if rec != nil {
			_ = rec.Close() // opened, perhaps, before the store failed
		}
		return nil, err
	}
	stops.add(func(context.Context) error { return store.Close() }) // last: after the broker
	if rec != nil {
		stops.add(closeRecorder(rec)) // after the hub, before the store
		log.Info("history on", "dir", opts.DataDir, "levels", historyLevels(opts), "bytes", opts.HistoryBytes, "series", opts.HistorySeries,
			"topics", strings.Join(opts.HistoryTopics, " "))
	}
	log.Info("store opened", "dir", opts.DataDir, "epoch", store.Restored().Epoch, "values", len(store.Restored().Values))
	return store, nil
}

// letIn hands the MQTT side to the hub: the upstream resyncs it from now
// on (with --upstream-jetstream, the stream's feed starts reading and
// resyncs it where it must instead); the embedded broker lets devices in,
// only now that the hub listens.
func (mq mqttSide) letIn(hub *bridge.Hub) error {
	switch {
	case mq.feed != nil:
		return mq.feed.start(hub)
	case mq.up != nil:
		mq.up.setHub(hub)
	default:
		mq.broker.Open()
	}
	return nil
}

// hubConfig is the bridge's configuration.
func hubConfig(opts options, sec security, mq mqttSide, log *slog.Logger) bridge.Config {
	hubCfg := bridge.Config{
		Logger:                log,
		Authorizer:            sec.authz,
		Refusals:              sec.refusals,
		AllowedOrigins:        opts.AllowOrigins,
		AckTimeout:            opts.AckTimeout,
		MaxMessageBytes:       opts.MaxMessageBytes,
		MessageRate:           opts.RateLimit,
		MaxSessions:           opts.MaxConnections,
		MaxSessionsPerAddress: opts.MaxConnectionsPerAddress,
		MaxSubscriptions:      opts.MaxSubscriptions,
		MaxStateValues:        opts.MaxStateValues,
		Devices:               devices.Config{MaxDevices: opts.MaxDevices},
		MaxTopics:             opts.MaxTopics,
		HistoryLength:         opts.RecentMessages,
		HistoryBytes:          int(opts.RecentBytes),
		CoalesceWindow:        opts.CoalesceWindow,
	}
	if opts.CoalesceWindow == 0 {
		hubCfg.CoalesceWindow = -1 // off; the bridge's zero is its default
	}
	if mq.store != nil && mq.up == nil { // with --upstream the store holds only the history
		hubCfg.Journal, hubCfg.Restore = mq.store, mq.store.Restored()
	}
	if mq.history != nil {
		hubCfg.Observers = append(hubCfg.Observers, historyObserver{mq.history})
	}
	if mq.up != nil {
		// Subscribed upstream to what the clients want, not to everything;
		// and, to record them, to the history's topics for good.
		hubCfg.SubscribeOnDemand, hubCfg.SubscribeLinger = true, opts.UpstreamLinger
		if mq.history != nil {
			hubCfg.KeepSubscribed = opts.HistoryTopics
		}
		hubCfg.KeepSubscribed = append(slices.Clip(hubCfg.KeepSubscribed), mq.up.keepSubscribed()...)
	}
	if mq.feed != nil {
		mq.feed.hubConfig(&hubCfg)
	}
	return hubCfg
}

// readiness is what /readyz checks: the hub is past its start and not
// stopping, the store writes, the upstream is connected.
func readiness(ready *atomic.Bool, mq mqttSide) []web.Check {
	checks := []web.Check{{Name: "hub", Ready: func() error {
		if !ready.Load() {
			return errors.New("starting or stopping")
		}
		return nil
	}}}
	if mq.store != nil {
		checks = append(checks, web.Check{Name: "store", Ready: mq.store.Err})
	}
	if mq.historyOff != nil {
		// Said, not failed: the hub serves all but the history.
		checks = append(checks, web.Check{Name: "history", Degraded: true, Ready: func() error { return mq.historyOff }})
	}
	if mq.up != nil {
		checks = append(checks, web.Check{Name: "upstream", Ready: mq.up.remote.Ready})
	}
	if mq.feed != nil {
		checks = append(checks, web.Check{Name: "jetstream", Ready: mq.feed.feed.Ready})
	}
	return checks
}

// readinessNames names, for a person, the parts that readiness checks.
func (mq mqttSide) readinessNames(opts options) map[string]string {
	names := map[string]string{"hub": "the hub to start", "store": "the store in " + opts.DataDir + " to write"}
	if mq.up != nil {
		names["upstream"] = "the upstream broker" // its errors name its URL
	}
	if mq.feed != nil {
		names["jetstream"] = "the JetStream stream"
	}
	return names
}

// webConfig is the HTTP surface's configuration; ln is the HTTP listener.
func webConfig(opts options, sec security, mq mqttSide, ln net.Listener, checks []web.Check, log *slog.Logger) web.Config {
	webCfg := web.Config{
		Logger:         log,
		Authorizer:     sec.authz,
		Throttle:       sec.throttle,
		Refusals:       sec.refusals,
		SecureCookies:  sec.cert != nil,
		AllowedOrigins: opts.AllowOrigins,
		AllowedHosts:   opts.AllowHosts,
		NonLoopback:    !isLoopback(ln.Addr().String()),
		TrustedProxies: opts.TrustedProxies,
		Checks:         checks,
		History:        mq.history,
		HistoryOff:     mq.historyOff,
	}
	if mq.up != nil {
		webCfg.Collectors = []prometheus.Collector{mq.up}
		if mq.feed != nil {
			webCfg.Collectors = append(webCfg.Collectors, mq.feed)
		}
	} else {
		// MQTT.js and other browser MQTT clients, next to Clown.Talk.
		webCfg.MQTTOverWebSocket = mq.broker.WebSocketHandler(opts.AllowOrigins)
		webCfg.Broker = mq.broker // the admin view's MQTT clients and retained messages
		webCfg.Collectors = []prometheus.Collector{brokerCollector{mq.broker}}
	}
	if mq.store != nil {
		webCfg.Collectors = append(webCfg.Collectors, storeCollector{mq.store})
	}
	if mq.history != nil {
		webCfg.Collectors = append(webCfg.Collectors, historyCollector{mq.history})
	}
	return webCfg
}

// httpServer is the hub's HTTP server: its listener, bound before the hub
// exists, and the server that serves it once the hub does.
type httpServer struct {
	ln          net.Listener
	srv         *http.Server
	scheme      string // http or https
	served      bool
	serveErr    chan error
	shutdownErr chan error
}

// listenHTTP binds the HTTP listener. Its stop waits for the server's
// Shutdown (see shutdown), or closes the listener that was never served.
func listenHTTP(opts options, sec security, log *slog.Logger, stops *stopList) (*httpServer, error) {
	ln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		hint := ""
		if errors.Is(err, syscall.EADDRINUSE) {
			hint = ": choose another address with --http"
		}
		return nil, fmt.Errorf("listen for HTTP on %s: %w%s", opts.HTTPAddr, err, hint)
	}
	hs := &httpServer{
		ln: ln,
		srv: &http.Server{
			ReadHeaderTimeout: opts.ReadHeaderTimeout,
			IdleTimeout:       opts.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		scheme:      "http",
		serveErr:    make(chan error, 1),
		shutdownErr: make(chan error, 1),
	}
	if sec.cert != nil {
		hs.srv.TLSConfig = sec.cert.config("h2", "http/1.1")
		hs.scheme = "https"
	}
	stops.add(hs.wait)
	return hs, nil
}

// serve serves handler on the listener, in a goroutine of its own.
func (hs *httpServer) serve(handler http.Handler) {
	hs.srv.Handler = handler
	hs.served = true
	if hs.scheme == "https" {
		go func() { hs.serveErr <- hs.srv.ServeTLS(hs.ln, "", "") }()
	} else {
		go func() { hs.serveErr <- hs.srv.Serve(hs.ln) }()
	}
}

// shutdown starts the server's Shutdown, which closes the listener at once
// and then waits for the requests under way; wait collects its result.
func (hs *httpServer) shutdown(ctx context.Context) {
	if hs.served {
		go func() { hs.shutdownErr <- hs.srv.Shutdown(ctx) }()
	}
}

func (hs *httpServer) wait(context.Context) error {
	if !hs.served {
		return hs.ln.Close()
	}
	err := <-hs.shutdownErr
	if serr := <-hs.serveErr; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// waitForEnd returns when ctx ends (a signal), or with the HTTP server's
// error if it fails first.
func (hs *httpServer) waitForEnd(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-hs.serveErr:
		hs.serveErr <- err // for wait
		return fmt.Errorf("http server: %w", err)
	}
}

// announce tells a person where to go (text logs only) and logs "ready".
func announce(opts options, sec security, mq mqttSide, hs *httpServer, stdout io.Writer, log *slog.Logger) {
	upstreamURL := ""
	if mq.up != nil {
		upstreamURL = strings.Join(mq.up.remote.URLs(), ",") // the nodes; the one in use changes
	}
	if out := textOut(opts, stdout); out != nil {
		printBanner(out, hs.scheme, hs.ln.Addr(), mq.broker, upstreamURL)
	}
	log.Info("ready", "version", version(), "users", opts.UsersFile != "", "tls", sec.cert != nil, "upstream", upstreamURL)
}

// security is who may do what, and the certificate to prove the hub's name.
type security struct {
	authz    *auth.Authorizer
	throttle *auth.Throttle // failed logins per user name and address, for MQTT and HTTP alike
	cert     *certificate   // nil without TLS
	demo     demoLogin      // the --demo motes' credentials with --users; zero otherwise
	refusals *refusals.Log  // where every door reports what it refuses, summarised per address
}

// The throttle of failed logins: 10 a minute for one name from one address,
// and 100 a minute from one address over all names, for MQTT and HTTP alike.
var throttleConfig = auth.ThrottleConfig{PerUser: 10, PerAddress: 100, Window: time.Minute}

func loadSecurity(opts options) (security, error) {
	sec := security{authz: auth.Open(), throttle: auth.NewThrottle(throttleConfig)}
	if opts.UsersFile != "" {
		users, err := auth.Load(opts.UsersFile)
		if err != nil {
			return sec, err
		}
		sec.authz = auth.New(users)
		if opts.Demo {
			if sec.demo, err = addDemoUser(sec.authz); err != nil {
				return sec, err
			}
		}
	}
	if opts.TLSCert != "" {
		cert, err := loadCertificate(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return sec, err
		}
		sec.cert = cert
	}
	return sec, nil
}

func startBroker(opts options, sec security, store *broker.Store, log *slog.Logger) (*broker.Embedded, error) {
	cfg := broker.Config{
		Store:                    store,
		Addr:                     opts.MQTTAddr,
		TLSAddr:                  opts.MQTTSAddr,
		Logger:                   log,
		Authorizer:               sec.authz,
		Throttle:                 sec.throttle,
		Refusals:                 sec.refusals,
		MaxPacketSize:            uint32(16 * opts.MaxMessageBytes),
		MaxConnections:           opts.MaxConnections,
		MaxConnectionsPerAddress: opts.MaxConnectionsPerAddress,
		MessageRate:              opts.MQTTRateLimit,
		ConnectTimeout:           opts.MQTTConnectTimeout,
		MaxSessions:              opts.MQTTMaxSessions,
		SessionExpiry:            opts.MQTTSessionExpiry,
		MaxSubscriptions:         opts.MQTTMaxSubscriptions,
		MaxQueued:                opts.MQTTMaxQueued,
	}
	if sec.cert != nil {
		cfg.TLS = sec.cert.config()
	}
	b, err := broker.Start(cfg)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: is another MQTT broker (a system mosquitto?) running there? Stop it, or choose another address with --mqtt", err)
	}
	if err != nil {
		return nil, err
	}
	for _, l := range []struct {
		proto string
		addr  net.Addr
	}{{"mqtt", b.Addr()}, {"mqtts", b.TLSAddr()}} {
		if l.addr != nil {
			log.Info("listening", "proto", l.proto, "addr", l.addr.String(), "url", l.proto+"://"+l.addr.String())
		}
	}
	return b, nil
}

// reloadOnSIGHUP reloads the users file and the certificate on SIGHUP:
// clients whose user is gone are disconnected (b, the embedded broker, is
// nil with --upstream), the others get their new rights at once. A file with a mistake is refused, and what is in force
// stays. The returned func stops listening for the signal.
func reloadOnSIGHUP(opts options, sec security, b *broker.Embedded, hub *bridge.Hub, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-hup:
				reload(opts, sec, b, hub, log)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

func reload(opts options, sec security, b *broker.Embedded, hub *bridge.Hub, log *slog.Logger) {
	if opts.UsersFile != "" {
		users, err := auth.Load(opts.UsersFile)
		if err == nil {
			err = sec.authz.Replace(users) // keeps the built-in users (--demo's)
		}
		if err != nil {
			log.Error("users file not reloaded: the users in force stay", "err", err)
		} else {
			if b != nil {
				b.Recheck()
			}
			hub.Recheck()
			log.Info("users reloaded", "file", opts.UsersFile, "users", len(users.Names()))
		}
	}
	if sec.cert != nil {
		if err := sec.cert.reload(); err != nil {
			log.Error("TLS certificate not reloaded: the one in use stays", "err", err)
		} else {
			log.Info("TLS certificate reloaded", "file", opts.TLSCert)
		}
	}
}

// printBanner tells a person where to go, with addresses a terminal can open.
// b is nil with an upstream broker.
func printBanner(w io.Writer, scheme string, httpAddr net.Addr, b *broker.Embedded, upstreamURL string) {
	host := reachable(httpAddr)
	ws := "ws"
	if scheme == "https" {
		ws = "wss"
	}
	fmt.Fprintf(w, "\nmotehub is ready\n")
	fmt.Fprintf(w, "  dashboard  %s://%s/\n", scheme, host)
	fmt.Fprintf(w, "  websocket  %s://%s/ws\n", ws, host)
	fmt.Fprintf(w, "  events     %s://%s/events\n", scheme, host)
	if b == nil {
		fmt.Fprintf(w, "  upstream   %s\n\n", upstreamURL)
		return
	}
	fmt.Fprintf(w, "  mqtt-ws    %s://%s/mqtt\n", ws, host)
	if a := b.Addr(); a != nil {
		fmt.Fprintf(w, "  mqtt       mqtt://%s\n", reachable(a))
	}
	if a := b.TLSAddr(); a != nil {
		fmt.Fprintf(w, "  mqtts      mqtts://%s\n", reachable(a))
	}
	fmt.Fprintln(w)
}

// reachable is a listener's address as a client on this machine dials it:
// "localhost" for an address that listens on every interface.
func reachable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// version names this build: the module version (or "(devel)"), the commit
// when known, the Go version and the platform.
func version() string {
	v := "(devel)"
	if info, ok := debug.ReadBuildInfo(); ok {
		v = info.Main.Version
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("motehub %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
