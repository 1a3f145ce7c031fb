package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/httpx"
)

// originGuard lets pages from other origins use the hub only when listed in
// allowed: a request whose Origin is neither the hub's own nor listed is
// refused (403), so another site cannot make a visitor's browser publish or
// read with the visitor's cookie or cached credentials. Allowed origins get
// CORS headers, credentials included, and their preflight requests answered.
func originGuard(allowed []string, f refuser) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" || bridge.OriginAllowed(origin, r, nil) {
				next.ServeHTTP(w, r)
				return
			}
			if !bridge.OriginAllowed(origin, r, allowed) {
				f.refuse(w, r, http.StatusForbidden, bridge.CodeForbidden,
					"pages from "+origin+" may not use this hub (see --allow-origin)", "")
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// clientAddress makes r.RemoteAddr the client's address when the request
// came through a trusted proxy: the rightmost address in X-Forwarded-For
// that is not itself a trusted proxy. It also takes the scheme the client
// used from the proxy's X-Forwarded-Proto (see bridge.RequestScheme), so
// that a page served by a TLS-terminating proxy is the hub's own origin.
// Without trusted proxies both headers are ignored: anyone can write them.
func clientAddress(trusted []netip.Prefix) func(http.Handler) http.Handler {
	isTrusted := func(ip netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(ip.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		if len(trusted) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer, err := netip.ParseAddr(httpx.Host(r.RemoteAddr))
			if err == nil && isTrusted(peer) {
				hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
				for i := len(hops) - 1; i >= 0; i-- {
					ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
					if err != nil {
						break // a hop we cannot read: stop at the last one we trust
					}
					if !isTrusted(ip) {
						r.RemoteAddr = net.JoinHostPort(ip.String(), "0")
						break
					}
				}
				// The first entry is what the proxy facing the client saw.
				proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
				if proto = strings.ToLower(strings.TrimSpace(proto)); proto == "http" || proto == "https" {
					r = r.WithContext(bridge.WithForwardedScheme(r.Context(), proto))
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
