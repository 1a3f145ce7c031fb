package web

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/refusals"
)

// refuser answers the requests the HTTP layer refuses and reports each to
// Config.Refusals: every 401, 403 and 429 it answers (a navigation sent to
// the login page is not a refusal).
type refuser struct{ log *refusals.Log }

// refuse answers r with status and the JSON error {code, message}, and
// reports it; user is the name r claimed, if any.
func (f refuser) refuse(w http.ResponseWriter, r *http.Request, status int, code, message, user string) {
	f.report(r, status, message, user)
	httpx.WriteError(w, status, code, message)
}

// report reports that r was answered status for reason, when that is a
// refusal.
func (f refuser) report(r *http.Request, status int, reason, user string) {
	if status != http.StatusUnauthorized && status != http.StatusForbidden && status != http.StatusTooManyRequests {
		return
	}
	f.log.Refused(door(r.URL.Path), r.RemoteAddr, user, reason, slog.Int("status", status))
}

// door is the door a request's path leads to.
func door(path string) refusals.Door {
	switch {
	case path == "/ws" || strings.HasPrefix(path, "/ws/"),
		strings.HasPrefix(path, "/"+clownHubName), strings.HasPrefix(path, clownHubAuth+"/"+clownHubName):
		return refusals.WebSocket // Clown.Hub's spelling of /ws too (clownhub.go)
	case path == "/events" || strings.HasPrefix(path, "/events/"):
		return refusals.SSE
	case path == mqttPath:
		return refusals.MQTTWebSocket
	case path == "/login":
		return refusals.Login
	}
	return refusals.HTTP
}

// claimedUser is the user r names: the one its credentials proved, else
// the name in its Basic credentials (never a password or a token).
func claimedUser(r *http.Request) string {
	if id, ok := auth.Authenticated(r.Context()); ok {
		return string(id)
	}
	if user, _, ok := r.BasicAuth(); ok {
		return user
	}
	return ""
}
