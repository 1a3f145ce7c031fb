package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/motehub/motehub/topics"
)

// Identity names who acts: a user's name, or Anonymous.
type Identity string

// Errors of authentication.
var (
	ErrBadCredentials = errors.New("wrong user name, password or token")
	ErrNoAnonymous    = errors.New("credentials required")
)

// Authorizer is the one place that decides, for every door. Create it with
// [Open] (no users file: everyone is anonymous and may do everything, which
// the hub allows only on loopback addresses) or [New].
type Authorizer struct {
	users atomic.Pointer[Users] // nil when open; the file's users and the built-in ones

	replacing sync.Mutex // serialises AddBuiltIn and Replace
	builtIn   []*User    // see AddBuiltIn
	file      *Users     // the users file's users, without the built-in ones

	mu      sync.Mutex
	checked map[[sha256.Size]byte]checkedPassword // recent successful password checks
}

type checkedPassword struct {
	hash  string // the user's hash when it was checked: a new password invalidates it
	until time.Time
}

// passwordCache bounds how long and how many successful password checks are
// remembered, so that HTTP Basic on every request does not pay bcrypt each time.
const (
	passwordCacheTTL  = 5 * time.Minute
	passwordCacheSize = 4096
)

// Open returns an authorizer without users: everything is allowed.
func Open() *Authorizer { return &Authorizer{checked: make(map[[sha256.Size]byte]checkedPassword)} }

// New returns an authorizer that enforces users.
func New(users *Users) *Authorizer {
	a := Open()
	a.file = users
	a.users.Store(users)
	return a
}

// ErrBuiltInName is returned, wrapped, for a users file that defines the
// name of a built-in user.
var ErrBuiltInName = errors.New("a users file may not define a built-in user")

// AddBuiltIn puts user in force besides the users file's for as long as the
// authorizer lives: every [Authorizer.Replace] keeps it. The hub defines such
// users itself (the simulated motes of --demo), and writes them nowhere. A
// users file that defines the same name is refused, here and at each
// Replace, rather than one user silently replacing the other. An open
// authorizer refuses too: without a users file there is nobody to add.
func (a *Authorizer) AddBuiltIn(user *User) error {
	a.replacing.Lock()
	defer a.replacing.Unlock()
	if a.file == nil {
		return errors.New("built-in users need a users file")
	}
	builtIn := append(slices.Clone(a.builtIn), user)
	merged, err := withBuiltIn(a.file, builtIn)
	if err != nil {
		return err
	}
	a.builtIn = builtIn
	a.users.Store(merged)
	return nil
}

// Replace puts new users in force at once (a reload), with the built-in
// users. It refuses users that define a built-in user's name
// ([ErrBuiltInName]), and the users in force then stay.
func (a *Authorizer) Replace(users *Users) error {
	a.replacing.Lock()
	defer a.replacing.Unlock()
	merged, err := withBuiltIn(users, a.builtIn)
	if err != nil {
		return err
	}
	a.file = users
	a.users.Store(merged)
	a.mu.Lock()
	clear(a.checked)
	a.mu.Unlock()
	return nil
}

// withBuiltIn returns file with the built-in users added.
func withBuiltIn(file *Users, builtIn []*User) (*Users, error) {
	merged := file
	for _, user := range builtIn {
		if _, clash := file.Lookup(user.Name); clash {
			return nil, fmt.Errorf("%w: %q is the hub's own; rename the file's user", ErrBuiltInName, user.Name)
		}
		var err error
		if merged, err = merged.With(user); err != nil {
			return nil, fmt.Errorf("built-in user %q: %w", user.Name, err)
		}
	}
	return merged, nil
}

// Enabled reports whether a users file is in force.
func (a *Authorizer) Enabled() bool { return a.users.Load() != nil }

// Authenticate checks a user name and password.
func (a *Authorizer) Authenticate(name, password string) (Identity, error) {
	users := a.users.Load()
	if users == nil {
		return Identity(name), nil // nothing to check against: open
	}
	user, ok := users.Lookup(name)
	if !ok || user.PasswordHash == "" || name == Anonymous {
		_ = bcrypt.CompareHashAndPassword(users.dummyHash(), []byte(password))
		return "", ErrBadCredentials
	}
	key := sha256.Sum256([]byte(name + "\x00" + password))
	now := time.Now()
	a.mu.Lock()
	c, hit := a.checked[key]
	a.mu.Unlock()
	if hit && c.hash == user.PasswordHash && now.Before(c.until) {
		return Identity(name), nil
	}
	if bcrypt.CompareHashAndPassword([]byte(user.PasswordHash), []byte(password)) != nil {
		return "", ErrBadCredentials
	}
	a.mu.Lock()
	if len(a.checked) >= passwordCacheSize {
		clear(a.checked)
	}
	a.checked[key] = checkedPassword{hash: user.PasswordHash, until: now.Add(passwordCacheTTL)}
	a.mu.Unlock()
	return Identity(name), nil
}

// AuthenticateToken checks an API token.
func (a *Authorizer) AuthenticateToken(token string) (Identity, error) {
	users := a.users.Load()
	if users == nil {
		return Anonymous, nil
	}
	if name, ok := users.byToken[sha256.Sum256([]byte(token))]; ok {
		return Identity(name), nil
	}
	return "", ErrBadCredentials
}

// Anonymous returns the identity of a client without credentials, or
// ErrNoAnonymous when the users file grants them nothing.
func (a *Authorizer) Anonymous() (Identity, error) {
	users := a.users.Load()
	if users == nil {
		return Anonymous, nil
	}
	if _, ok := users.Lookup(Anonymous); !ok {
		return "", ErrNoAnonymous
	}
	return Anonymous, nil
}

// Known reports whether id still exists in the users in force (it may have
// been removed by a reload).
func (a *Authorizer) Known(id Identity) bool {
	users := a.users.Load()
	if users == nil {
		return true
	}
	_, ok := users.Lookup(string(id))
	return ok
}

// Allowed is the decision: may id have access to the topic name topic?
func (a *Authorizer) Allowed(id Identity, access Access, topic string) bool {
	users := a.users.Load()
	if users == nil {
		return true
	}
	user, ok := users.Lookup(string(id))
	if !ok {
		return false
	}
	for _, r := range user.Rules {
		if r.Access&access != 0 && topics.Match(r.Filter, topic) {
			return true
		}
	}
	return false
}

// Subscription decides a subscription of id to filter: allowed when some
// topic the filter matches is readable, exact when every such topic is, so
// its messages need no check one by one. A subscription that is allowed but
// not exact delivers only the messages id may read (see Allowed).
func (a *Authorizer) Subscription(id Identity, filter string) (allowed, exact bool) {
	users := a.users.Load()
	if users == nil {
		return true, true
	}
	user, ok := users.Lookup(string(id))
	if !ok {
		return false, false
	}
	for _, r := range user.Rules {
		if r.Access&Read == 0 {
			continue
		}
		if topics.Covers(r.Filter, filter) {
			return true, true
		}
		if topics.Overlap(r.Filter, filter) {
			allowed = true
		}
	}
	return allowed, false
}

// Rights is what an identity may do, as a page shows it: the rules in force
// for it, and whether it may use the admin view.
type Rights struct {
	// Open is true when no users file is in force: everyone may do
	// everything (the hub allows that only on loopback), admin included.
	Open bool
	// Rules are the user's rules (none when Open or when the user is gone).
	Rules []Rule
	// Admin is true for a user with the admin flag, or whose rules let them
	// read every "$SYS" topic (MQTT's own way of naming the operator).
	// Anonymous is never an admin: the users file refuses it the flag, and
	// reading $SYS (broker statistics shown to all) does not give it either,
	// since anyone who reaches the hub is anonymous.
	Admin bool
}

// adminFilter is the filter whose read access makes a user an admin.
const adminFilter = "$SYS/#"

// Rights returns what id may do under the users in force now.
func (a *Authorizer) Rights(id Identity) Rights {
	users := a.users.Load()
	if users == nil {
		return Rights{Open: true, Admin: true}
	}
	user, ok := users.Lookup(string(id))
	if !ok {
		return Rights{}
	}
	_, sys := a.Subscription(id, adminFilter)
	return Rights{Rules: slices.Clone(user.Rules), Admin: user.Admin || sys && id != Anonymous}
}

// Admin reports whether id may use the admin view (see [Rights]).
func (a *Authorizer) Admin(id Identity) bool { return a.Rights(id).Admin }

type identityKey struct{}

// WithIdentity returns ctx carrying id (set by the HTTP layer once it has
// authenticated a request).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity ctx carries, or Anonymous.
func IdentityFrom(ctx context.Context) Identity {
	if id, ok := ctx.Value(identityKey{}).(Identity); ok {
		return id
	}
	return Anonymous
}

// Authenticated returns the identity ctx carries when it is a user who
// proved who they are (not Anonymous).
func Authenticated(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok && id != Anonymous
}
