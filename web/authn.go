package web

import (
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/httpx"
)

// sessionCookie is the name of the login session's cookie.
const sessionCookie = "motehub_session"

// authn authenticates HTTP requests for auth's Authorizer: a session cookie
// (from the login page), an API token (Authorization: Bearer), or HTTP Basic;
// else the anonymous entry of the users file, when there is one.
type authn struct {
	authz    *auth.Authorizer
	throttle *auth.Throttle
	sessions *sessions
	secure   bool // cookies only over TLS
	history  bool // the hub keeps a history (GET /api/me says so)
	failures atomic.Uint64
	refuser
}

// errThrottled is what a login that must wait returns, wrapped in a
// throttledError that says how long.
var errThrottled = errors.New("too many failed logins for this name or from this address")

type throttledError struct{ wait time.Duration }

func (e throttledError) Error() string {
	return fmt.Sprintf("%v: try again in %d s", errThrottled, retryAfter(e.wait))
}

func (e throttledError) Unwrap() error { return errThrottled }

// retryAfter is a wait in whole seconds, rounded up, for Retry-After.
func retryAfter(wait time.Duration) int {
	return max(1, int((wait+time.Second-1)/time.Second))
}

// setRetryAfter sets Retry-After to the wait err carries.
func setRetryAfter(w http.ResponseWriter, err error) {
	var te throttledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(te.wait)))
	}
}

// tokenName is the name a Bearer token's attempts are throttled under: the
// token's own (a short hash, with a space no user name has), so that a
// script with a stale token locks out only itself, while every wrong token
// counts toward its address's ceiling.
func tokenName(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "token " + base64.RawURLEncoding.EncodeToString(sum[:9])
}

// public routes need no credentials: the login page needs the dashboard's
// style sheet and icon, which say nothing about the hub.
func public(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/login", "/logout", assetsPrefix + "style.css", assetsPrefix + "icon.svg":
		return true
	}
	return false
}

func (a *authn) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authz.Enabled() || public(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		id, how, found, err := a.credentials(r)
		if found && err != nil {
			a.failures.Add(1)
		}
		if !found {
			if r.URL.Path == mqttPath {
				next.ServeHTTP(w, r) // MQTT's CONNECT decides
				return
			}
			id, err = a.anonymous()
			how = loginAnonymous
		}
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(withLogin(auth.WithIdentity(r.Context(), id), how)))
		case errors.Is(err, errThrottled):
			setRetryAfter(w, err)
			a.refuse(w, r, http.StatusTooManyRequests, bridge.CodeRateLimited, err.Error(), claimedUser(r))
		case isNavigation(r):
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		default:
			if r.Header.Get("Sec-Fetch-Mode") == "" { // not a browser: a challenge tells curl and friends what to send
				w.Header().Set("WWW-Authenticate", `Basic realm="motehub", charset="UTF-8"`)
			}
			a.refuse(w, r, http.StatusUnauthorized, bridge.CodeUnauthorized, err.Error(), claimedUser(r))
		}
	})
}

// requireUser lets through only users who proved who they are, when there
// is a users file: what the anonymous entry may read are topics, not the
// hub's own counters.
func (a *authn) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.Authenticated(r.Context()); a.authz.Enabled() && !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="motehub", charset="UTF-8"`)
			a.refuse(w, r, http.StatusUnauthorized, bridge.CodeUnauthorized, r.URL.Path+" is for known users; give credentials", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isNavigation reports whether a person's browser asked for a page.
func isNavigation(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.Header.Get("Sec-Fetch-Mode") == "navigate" ||
		strings.Contains(r.Header.Get("Accept"), "text/html"))
}

// credentials returns who r says it is and how, from a valid session
// cookie or its Authorization header; found is false when it says nothing.
func (a *authn) credentials(r *http.Request) (id auth.Identity, how login, found bool, err error) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if id, ok := a.sessions.lookup(c.Value); ok && a.authz.Known(id) {
			return id, loginSession, true, nil
		}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "", false, nil
	}
	if token, ok := strings.CutPrefix(h, "Bearer "); ok {
		token = strings.TrimSpace(token)
		addr, name := httpx.Host(r.RemoteAddr), tokenName(token)
		if ok, wait := a.throttle.Attempt(addr, name); !ok {
			return "", loginToken, true, throttledError{wait}
		}
		id, err := a.authz.AuthenticateToken(token)
		if err != nil {
			return "", loginToken, true, err
		}
		a.throttle.Succeed(addr, name)
		return id, loginToken, true, nil
	}
	if user, password, ok := r.BasicAuth(); ok {
		id, err := a.password(httpx.Host(r.RemoteAddr), user, password)
		return id, loginBasic, true, err
	}
	return "", "", true, errors.New("the Authorization header must be Basic or Bearer")
}

// anonymous is who a request without credentials is, if anyone.
func (a *authn) anonymous() (auth.Identity, error) {
	id, err := a.authz.Anonymous()
	if err != nil {
		return "", fmt.Errorf("%w: log in, or send Basic credentials or a Bearer token", err)
	}
	return id, nil
}

// password checks a user name and password from addr, throttled.
func (a *authn) password(addr, user, password string) (auth.Identity, error) {
	if ok, wait := a.throttle.Attempt(addr, user); !ok {
		return "", throttledError{wait}
	}
	id, err := a.authz.Authenticate(user, password)
	if err != nil {
		return "", err
	}
	a.throttle.Succeed(addr, user)
	return id, nil
}

//go:embed login.html
var loginHTML string

var loginPage = template.Must(template.New("login").Parse(loginHTML))

// Messages of the login page.
const (
	msgWrongLogin     = "Wrong user name or password."
	msgSessionExpired = "Your session has expired (or the hub restarted): log in again."
	msgTooManyLogins  = "Too many failed attempts: try again in %d s."
)

// loginForm serves GET /login. A browser that comes with a session cookie
// the hub no longer honours (expired, from before a restart, of a user
// since removed) is told that its session expired, and the cookie is
// dropped (so that it is said once).
func (a *authn) loginForm(w http.ResponseWriter, r *http.Request) {
	message := ""
	if c, err := r.Cookie(sessionCookie); err == nil && a.authz.Enabled() {
		if id, ok := a.sessions.lookup(c.Value); !ok || !a.authz.Known(id) {
			message = msgSessionExpired
			a.clearCookie(w)
		}
	}
	a.renderLogin(w, http.StatusOK, r.URL.Query().Get("next"), "", message)
}

// renderLogin answers with the login page: user is the name to keep in its
// field, message what went wrong ("" for none).
func (a *authn) renderLogin(w http.ResponseWriter, status int, next, user, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", dashboardCSP)
	w.Header().Set("Referrer-Policy", pageReferrerPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, struct{ Next, User, Message string }{safeNext(next), user, message})
}

// login serves POST /login: a form with user, password and next.
func (a *authn) login(w http.ResponseWriter, r *http.Request) {
	if !a.authz.Enabled() {
		http.Redirect(w, r, "/", http.StatusSeeOther) // nothing to log in to
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !bridge.OriginAllowed(origin, r, nil) {
		a.refuse(w, r, http.StatusForbidden, bridge.CodeForbidden, "log in from the hub's own page", "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	next := safeNext(r.PostFormValue("next"))
	user := r.PostFormValue("user")
	id, err := a.password(httpx.Host(r.RemoteAddr), user, r.PostFormValue("password"))
	var throttled throttledError
	switch {
	case errors.As(err, &throttled):
		setRetryAfter(w, err)
		a.report(r, http.StatusTooManyRequests, err.Error(), user)
		a.renderLogin(w, http.StatusTooManyRequests, next, user, fmt.Sprintf(msgTooManyLogins, retryAfter(throttled.wait)))
		return
	case err != nil:
		a.report(r, http.StatusUnauthorized, err.Error(), user)
		a.renderLogin(w, http.StatusUnauthorized, next, user, msgWrongLogin)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: a.sessions.create(id), Path: "/",
		MaxAge: int(a.sessions.ttl.Seconds()), HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout serves POST /logout.
func (a *authn) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.sessions.remove(c.Value)
	}
	a.clearCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// clearCookie tells the browser to forget its session cookie.
func (a *authn) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
}

// safeNext keeps a redirect after login on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// sessions are the logins of the dashboard, in memory: a restart logs
// everyone out. Only a hash of each token is kept.
type sessions struct {
	ttl time.Duration
	max int

	mu   sync.Mutex
	byID map[[sha256.Size]byte]session
}

type session struct {
	who     auth.Identity
	expires time.Time
}

func newSessions(ttl time.Duration, max int) *sessions {
	return &sessions{ttl: ttl, max: max, byID: make(map[[sha256.Size]byte]session)}
}

func (s *sessions) create(who auth.Identity) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails
	token := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		for k, v := range s.byID {
			if now.After(v.expires) {
				delete(s.byID, k)
			}
		}
		if len(s.byID) >= s.max {
			clear(s.byID) // a flood of logins: everyone logs in again rather than memory growing
		}
	}
	s.byID[sha256.Sum256([]byte(token))] = session{who: who, expires: now.Add(s.ttl)}
	return token
}

func (s *sessions) lookup(token string) (auth.Identity, bool) {
	key := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if !ok || time.Now().After(sess.expires) {
		delete(s.byID, key)
		return "", false
	}
	return sess.who, true
}

func (s *sessions) remove(token string) {
	s.mu.Lock()
	delete(s.byID, sha256.Sum256([]byte(token)))
	s.mu.Unlock()
}
