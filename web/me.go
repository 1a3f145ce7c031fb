package web

import (
	"context"
	"net/http"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
)

// login is how a request proved who it is.
type login string

// The ways of logging in, as GET /api/me names them.
const (
	loginSession   login = "session"   // the login page's cookie
	loginBasic     login = "basic"     // HTTP Basic
	loginToken     login = "token"     // an API token (Authorization: Bearer)
	loginAnonymous login = "anonymous" // no credentials: the anonymous entry, or an open hub
)

type loginKey struct{}

// withLogin returns ctx carrying how its request logged in (set by the
// authn middleware with the identity).
func withLogin(ctx context.Context, how login) context.Context {
	return context.WithValue(ctx, loginKey{}, how)
}

// loginFrom is how ctx's request logged in: anonymous when nothing said so
// (an open hub authenticates nobody).
func loginFrom(ctx context.Context) login {
	if how, ok := ctx.Value(loginKey{}).(login); ok {
		return how
	}
	return loginAnonymous
}

// me answers GET /api/me: who the request acts as, what they may do, how
// they logged in, and whether the hub keeps a history (the series form of
// GET /api/history answers, rather than 503: the dashboard's charts ask
// it, or the recent messages):
//
//	{"user": "alice", "open": false, "admin": false,
//	 "rules": [{"filter": "nodes/#", "read": true, "write": false}],
//	 "login": "session", "history": true}
//
// A request without credentials gets the anonymous entry's rights, or 401
// when the users file has none (the authn middleware decides, as for every
// route), so a page learns there that its login is gone.
func (a *authn) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		bridge.UserRights
		Login   login `json:"login"`
		History bool  `json:"history"`
	}{bridge.RightsOf(a.authz, auth.IdentityFrom(r.Context())), loginFrom(r.Context()), a.history})
}
