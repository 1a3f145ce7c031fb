package bridge

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/httpx"
	"github.com/motehub/motehub/internal/refusals"
)

// refuse answers r with e, a JSON HTTP error, and reports the refusal
// (Config.Refusals).
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, door refusals.Door, e *Error) {
	h.reportRefusal(r, door, e)
	httpx.WriteError(w, HTTPStatus(e.Code), e.Code, e.Message)
}

// answer answers r with e, a JSON HTTP error, and reports it when it is a
// refusal (refusedStatus).
func (h *Hub) answer(w http.ResponseWriter, r *http.Request, door refusals.Door, e *Error) {
	if refusedStatus(HTTPStatus(e.Code)) {
		h.reportRefusal(r, door, e)
	}
	httpx.WriteError(w, HTTPStatus(e.Code), e.Code, e.Message)
}

// reportRefusal reports that r was refused with e (not when the hub is
// shutting down: that refuses everyone).
func (h *Hub) reportRefusal(r *http.Request, door refusals.Door, e *Error) {
	if e == errShuttingDown {
		return
	}
	h.cfg.Refusals.Refused(door, r.RemoteAddr, userName(auth.IdentityFrom(r.Context())), e.Message,
		slog.Int("status", HTTPStatus(e.Code)))
}

// refusedStatus reports whether an answer with status is a refusal to
// report: of credentials (401), of rights or of an origin (403), of a
// limit (429).
func refusedStatus(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests
}

// sessionClosed logs the end of c's session. A client the hub cut off for
// what it did (too slow to read what it asked for, sending far too fast or
// too much) is reported as well, where refusals are: such clients come back,
// and their lines are bounded the same way.
func (h *Hub) sessionClosed(c *client) {
	h.log.Info("session closed", "session", c.id, "transport", c.transport, "remote", c.remote,
		"reason", c.reason.Text, "duration", time.Since(c.opened).Round(time.Millisecond))
	switch c.reason {
	case ReasonSlow, ReasonFlooding, ReasonTooLarge:
		h.cfg.Refusals.CutOff(transportDoor(c.transport), c.remote, userName(c.who), c.reason.Text,
			slog.String("session", c.id), slog.Int("close_code", c.reason.Code))
	}
}

// transportDoor is the door of a session's transport.
func transportDoor(transport string) refusals.Door {
	switch transport {
	case "ws":
		return refusals.WebSocket
	case "sse":
		return refusals.SSE
	}
	return refusals.HTTP
}

// userName is who as a refusal's line names it: "" for anonymous.
func userName(who auth.Identity) string {
	if who == auth.Anonymous {
		return ""
	}
	return string(who)
}
