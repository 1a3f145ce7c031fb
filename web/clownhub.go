package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/httpx"
)

// Clown.Hub, the server the Clown.Talk article's pages were written for,
// names a WebSocket's base topic in one path segment, with "_" for "/":
//
//	wss://clown:bigclown@localhost/auth/clown-talk-server_nodes_bridge_0
//
// is the Clown.Talk WebSocket mounted on nodes/bridge/0. The hub serves that
// path, and the same without "/auth", as aliases of /ws/{base...}, so such
// pages work unchanged.
//
// How a name is read:
//
//   - "_" is the level separator "/"; "__" is one "_" inside a level. A
//     plain reading of "__" would be an empty level, which no base may have,
//     so no page that worked with Clown.Hub spells it.
//   - A run of three or more "_" could be read more than one way
//     ("a___b": "a_/b" or "a/_b"): it is refused (400 bad-topic). A level
//     that starts or ends with "_" therefore has no Clown.Hub spelling:
//     such a base is reached as /ws/{base...}.
//   - "/" (or "%2F") has no place in the name: refused, so that no path
//     means two bases.
//   - "clown-talk-server" alone is the root, like /ws.
//
// The name and password of the URL reach the hub as HTTP Basic credentials:
// browsers send them after a 401 that asks for Basic (Chromium does so for
// WebSocket URLs; it does not send them unasked). The /auth form asks for
// them whenever the hub has a users file: it never falls back to the
// anonymous entry, whose rights a page that gives credentials does not want.
// Without /auth the usual rules apply (credentials if sent, else anonymous).

const (
	// clownHubName starts the one path segment of a Clown.Hub URL.
	clownHubName = "clown-talk-server"
	// clownHubAuth is the prefix of the form that insists on credentials.
	clownHubAuth = "/auth"
)

// clownHubRoutes are the patterns the aliases are served on.
var clownHubRoutes = []string{
	"/" + clownHubName, "/" + clownHubName + "_*",
	clownHubAuth + "/" + clownHubName, clownHubAuth + "/" + clownHubName + "_*",
}

// clownHubBase is the MQTT base that the name after "clown-talk-server" asks
// for: "" is the root, "_nodes_bridge_0" is "nodes/bridge/0",
// "_home_living__room" is "home/living_room". The result still goes through
// the hub's own check of a base (empty levels, "..").
func clownHubBase(rest string) (string, error) {
	if rest == "" {
		return "", nil
	}
	if strings.Contains(rest, "/") {
		return "", fmt.Errorf("%q holds a \"/\": the Clown.Hub form spells every level separator as \"_\" (or use /ws/{base})", clownHubName+rest)
	}
	if rest[0] != '_' {
		return "", fmt.Errorf("%q: want %s_ followed by the base topic, with \"_\" for \"/\"", clownHubName+rest, clownHubName)
	}
	var b strings.Builder
	for i := 1; i < len(rest); {
		if rest[i] != '_' {
			b.WriteByte(rest[i])
			i++
			continue
		}
		run := 1
		for i+run < len(rest) && rest[i+run] == '_' {
			run++
		}
		switch run {
		case 1:
			b.WriteByte('/')
		case 2:
			b.WriteByte('_')
		default:
			return "", fmt.Errorf("%q: %d underscores in a row can be read more than one way; write \"_\" for \"/\" and \"__\" for an underscore in a level, or use /ws/{base}", clownHubName+rest, run)
		}
		i += run
	}
	return b.String(), nil
}

// serveClownHub serves the Clown.Hub aliases: the Clown.Talk WebSocket on
// the base the path names (see clownHubBase).
func serveClownHub(hub *bridge.Hub, authz *auth.Authorizer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		path, insist := strings.CutPrefix(r.URL.Path, clownHubAuth+"/")
		if !insist {
			path = strings.TrimPrefix(r.URL.Path, "/")
		}
		base, err := clownHubBase(strings.TrimPrefix(path, clownHubName))
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, bridge.CodeBadTopic, err.Error())
			return
		}
		if _, ok := auth.Authenticated(r.Context()); insist && authz.Enabled() && !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="motehub", charset="UTF-8"`)
			httpx.WriteError(w, http.StatusUnauthorized, bridge.CodeUnauthorized,
				clownHubAuth+"/"+clownHubName+" needs a user name and password (in the URL, or as Basic credentials)")
			return
		}
		hub.ServeWebSocket(w, r, base)
	}
}
