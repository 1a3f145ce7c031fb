package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/refusals"
)

// Check is one part of the hub that must be ready before it takes traffic.
type Check struct {
	Name  string
	Ready func() error // nil when ready; else what is missing
	// Degraded: its error is said in /readyz's "degraded" (the hub runs
	// without that part: a damaged history), and does not make the hub
	// unready.
	Degraded bool
}

// Config tunes the HTTP surface. The zero value of each field means its
// documented default.
type Config struct {
	// Checks decide /readyz: ready when every check returns nil. Default:
	// none, always ready.
	Checks []Check
	// MaxBodyBytes bounds a request body (POST /api/publish). Default 64 KiB.
	MaxBodyBytes int64

	// Authorizer checks credentials and decides; the same one the hub and
	// the broker ask. Default: auth.Open(), no credentials needed.
	Authorizer *auth.Authorizer
	// Throttle slows password and token guessing per user name and address;
	// shared with MQTT. Default: auth.NewThrottle's defaults.
	Throttle *auth.Throttle
	// SessionTTL is how long a dashboard login lasts. Default 12 h.
	SessionTTL time.Duration
	// SecureCookies marks the session cookie Secure: set it when serving TLS.
	SecureCookies bool
	// AllowedOrigins are other origins whose pages may use the API and SSE
	// (CORS with credentials). Default: none, same origin only.
	AllowedOrigins []string
	// NonLoopback says the HTTP listener is reachable from other machines.
	// Default false: a loopback listener, which answers only requests whose
	// Host is a loopback name, one of AllowedHosts or the host of one of
	// AllowedOrigins (against DNS rebinding). When true, Host is checked only
	// if AllowedHosts is given.
	NonLoopback bool
	// AllowedHosts are more Host names (without port) the hub answers for;
	// given, they are enforced whatever the listener. Default: none.
	AllowedHosts []string
	// TrustedProxies are the addresses of reverse proxies whose
	// X-Forwarded-For names the client (for limits and logs), and whose
	// X-Forwarded-Proto the scheme it used (for the Origin check).
	// Default: none.
	TrustedProxies []netip.Prefix
	// MQTTOverWebSocket serves /mqtt (the broker's WebSocketHandler).
	// Default: nil, no /mqtt.
	MQTTOverWebSocket http.Handler
	// Broker is the embedded MQTT broker, for the admin view's MQTT clients
	// and retained messages (admin.go). Default: nil (an upstream broker),
	// and those parts of the admin view answer "unsupported".
	Broker Broker
	// History is the history on disk, for the series form of GET
	// /api/history and its CSV and NDJSON exports (history.go). Default:
	// nil, and those answer 503 (the recent messages, ?topic=&limit=, are
	// the hub's and always answered).
	History *history.Recorder
	// HistoryOff, with History nil, says why the hub keeps no history this
	// run (a damaged file): /api/history's 503 says it. Default: the
	// history is off by the flags.
	HistoryOff error
	// Collectors are more metrics for /metrics (the broker's, the
	// upstream's), besides the hub's, the runtime's and the process's.
	Collectors []prometheus.Collector
	// Refusals receives every request refused with 401, 403 or 429, logins
	// refused included: one WARN line each, summarised per address (package
	// refusals); the hub's doors share one. Default: a Log of its own on
	// Logger (never closed: summaries still pending when the hub stops are
	// lost).
	Refusals *refusals.Log
	// Logger receives the logs of the HTTP layer. Default: slog.Default().
	Logger *slog.Logger
}

// mqttPath is where MQTT over WebSocket is served.
const mqttPath = "/mqtt"

// New returns the hub's HTTP handler.
func New(hub *bridge.Hub, cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Refusals == nil {
		cfg.Refusals = refusals.New(refusals.Config{Logger: cfg.Logger})
	}
	refused := refuser{cfg.Refusals}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Authorizer == nil {
		cfg.Authorizer = auth.Open()
	}
	if cfg.Throttle == nil {
		cfg.Throttle = auth.NewThrottle(auth.ThrottleConfig{})
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	an := &authn{authz: cfg.Authorizer, throttle: cfg.Throttle, sessions: newSessions(cfg.SessionTTL, 100000),
		secure: cfg.SecureCookies, history: cfg.History != nil, refuser: refused}
	r := chi.NewRouter()
	r.Use(recoverer(cfg.Logger), hostGuard(cfg.NonLoopback, cfg.AllowedHosts, cfg.AllowedOrigins, refused),
		clientAddress(cfg.TrustedProxies), originGuard(cfg.AllowedOrigins, refused), an.middleware)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, http.StatusNotFound, bridge.CodeNotFound, "no route for "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, http.StatusMethodNotAllowed, bridge.CodeMethod,
			fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path))
	})

	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", readyHandler(cfg.Checks))
	r.Method(http.MethodGet, "/metrics", an.requireUser(metricsHandler(hub, an, cfg.Collectors)))
	r.Get("/login", an.loginForm)
	r.Post("/login", an.login)
	r.Post("/logout", an.logout)
	r.Get("/api/me", an.me)

	serveWS := func(w http.ResponseWriter, r *http.Request) {
		hub.ServeWebSocket(w, r, mountBase(r.URL.Path, "/ws"))
	}
	r.Get("/ws", serveWS)
	r.Get("/ws/*", serveWS)
	for _, p := range clownHubRoutes { // Clown.Hub's spelling of /ws/{base...} (clownhub.go)
		r.Get(p, serveClownHub(hub, cfg.Authorizer, refused))
	}
	serveEvents := func(w http.ResponseWriter, r *http.Request) {
		hub.ServeEvents(w, r, mountBase(r.URL.Path, "/events"))
	}
	r.Get("/events", serveEvents)
	r.Get("/events/*", serveEvents)
	if cfg.MQTTOverWebSocket != nil {
		r.Get(mqttPath, cfg.MQTTOverWebSocket.ServeHTTP)
	}

	a := &api{hub: hub, maxBodyBytes: cfg.MaxBodyBytes, refuser: refused}
	r.Post("/api/publish", a.publish)
	r.Get("/api/state", a.state)
	hist := &historyAPI{hub: hub, rec: cfg.History, off: cfg.HistoryOff, authz: cfg.Authorizer, recent: a.history, now: time.Now, refuser: refused}
	r.Get("/api/history", hist.serve)
	r.Get("/api/poll", a.poll)
	r.Get("/api/devices", a.devices)
	r.Get("/api/devices/{id}", a.device)
	r.Post("/api/devices/{id}/command", a.command)

	// The admin view (admin.go): its API; its page is the dashboard's.
	(&admin{hub: hub, broker: cfg.Broker, authz: cfg.Authorizer, log: cfg.Logger, refuser: refused}).routes(r)

	// The dashboard (dashboard.go): the page at / (the admin view's at
	// /admin), its files under /assets/, the client library at /motehub.js.
	dash := newDashboard()
	for _, p := range []string{"/", adminPath, assetsPrefix + "*", libraryPath, libraryTypesPath} {
		r.Get(p, dash.ServeHTTP)
		r.Head(p, dash.ServeHTTP)
	}
	return r
}

// mountBase is the MQTT base a path below prefix asks for: "/ws" and "/ws/"
// are the root, "/ws/nodes/bridge/0" is "nodes/bridge/0". It works on the
// decoded path, so "%2F" is a level separator like "/" and an encoded ".."
// is seen (and refused by the hub) as "..".
func mountBase(path, prefix string) string {
	base := strings.TrimPrefix(path, prefix)
	base = strings.TrimPrefix(base, "/")
	return strings.TrimSuffix(base, "/")
}

func readyHandler(checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		failing, degraded := map[string]string{}, map[string]string{}
		for _, c := range checks {
			if err := c.Ready(); err != nil && c.Degraded {
				degraded[c.Name] = err.Error()
			} else if err != nil {
				failing[c.Name] = err.Error()
			}
		}
		ans := map[string]any{"status": "ready"}
		if len(degraded) > 0 {
			ans["degraded"] = degraded
		}
		if len(failing) > 0 {
			ans["status"], ans["failing"] = "not ready", failing
			writeJSON(w, http.StatusServiceUnavailable, ans)
			return
		}
		writeJSON(w, http.StatusOK, ans)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, bridge.CodeInternal, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// recoverer turns a panic in a handler into a logged error (with the stack)
// and, unless the request asked for a WebSocket upgrade (its connection may
// be hijacked), a 500 with a JSON body. It cannot tell whether the handler
// had answered already: it does not wrap the ResponseWriter, which streams
// need as it is. After a handler that wrote, the status stays as written
// (net/http logs the superfluous WriteHeader) and the JSON follows what was
// sent. http.ErrAbortHandler goes on up, for net/http to end the response.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				if r.Header.Get("Upgrade") == "" {
					httpx.WriteError(w, http.StatusInternalServerError, bridge.CodeInternal, "internal error")
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
