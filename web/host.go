package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/motehub/motehub/bridge"
)

// hostGuard refuses requests whose Host names a site other than this hub,
// against DNS rebinding: a page of evil.example whose name is made to
// resolve to 127.0.0.1 is the same origin as a hub on loopback, so the Origin
// check lets it in; its Host header still says evil.example. On a loopback
// listener only loopback names, allowedHosts and the hosts of
// allowedOrigins are answered (403); on another listener the same, when
// allowedHosts is given, else every name (its clients need --users or
// --allow-anonymous already). /healthz and /readyz answer whatever the name:
// they need no credentials anyway, and health checks name the hub by
// whatever address they reach it at (a container's, a pod's).
func hostGuard(nonLoopback bool, allowedHosts, allowedOrigins []string, f refuser) func(http.Handler) http.Handler {
	if nonLoopback && len(allowedHosts) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	allowed := map[string]bool{}
	for _, h := range allowedHosts {
		allowed[hostName(h)] = true
	}
	for _, o := range allowedOrigins {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			allowed[hostName(u.Host)] = true
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name := hostName(r.Host)
			if allowed[name] || isLoopbackName(name) || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
				next.ServeHTTP(w, r)
				return
			}
			f.refuse(w, r, http.StatusForbidden, bridge.CodeForbidden, fmt.Sprintf(
				"this hub answers only for localhost and the names given with --allow-host, not for %q (a web page may be "+
					"trying DNS rebinding); if that name is this hub's, add --allow-host %s", name, name), "")
		})
	}
}

// hostName is the name in a Host header or an --allow-host value: lower
// case, without port, brackets or a final dot.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// isLoopbackName reports whether name can only mean this machine:
// "localhost" and its subdomains (resolved to loopback by browsers, RFC
// 6761, and never by a public DNS server), 127.0.0.0/8 and ::1.
func isLoopbackName(name string) bool {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(name)
	return err == nil && ip.Unmap().IsLoopback()
}
