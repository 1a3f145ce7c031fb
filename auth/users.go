package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/bcrypt"

	"github.com/motehub/motehub/internal/tomltext"
	"github.com/motehub/motehub/topics"
)

// Anonymous is the name of the entry that applies to clients without credentials.
const Anonymous = "anonymous"

// ErrBadUsersFile wraps every problem with a users file.
var ErrBadUsersFile = errors.New("bad users file")

// Access is what a rule grants on the topics its filter matches.
type Access uint8

// The kinds of access.
const (
	Read  Access = 1 << iota // receive messages, subscribe
	Write                    // publish
)

// Rule grants access to the topics matching Filter.
type Rule struct {
	Filter string
	Access Access
}

// User is one entry of the users file.
type User struct {
	Name         string
	PasswordHash string   // bcrypt; empty for anonymous or a token-only user
	TokenHashes  []string // "sha256:<hex>"
	Rules        []Rule
	// Admin opens the admin view (connected clients, retained messages) to
	// the user; reading "$SYS/#" does too, except for anonymous (see
	// [Authorizer.Rights]).
	Admin bool
}

// Users is the content of a users file. It is immutable once built.
type Users struct {
	byName  map[string]*User
	byToken map[[sha256.Size]byte]string // token hash → user name

	dummyOnce sync.Once
	dummy     []byte // see dummyHash
}

// dummyHash is compared against when a user does not exist, so that a wrong
// name takes as long as a wrong password: it has the highest cost of the
// users' own hashes (a built-in user's random secret has the lowest).
func (u *Users) dummyHash() []byte {
	u.dummyOnce.Do(func() {
		cost := 0
		for _, user := range u.byName {
			if c, err := bcrypt.Cost([]byte(user.PasswordHash)); err == nil {
				cost = max(cost, c)
			}
		}
		if cost == 0 {
			cost = passwordCost
		}
		u.dummy, _ = bcrypt.GenerateFromPassword([]byte("motehub: no such user"), cost)
	})
	return u.dummy
}

// fileUser is a user as the TOML file spells it.
type fileUser struct {
	Password  string   `toml:"password,omitempty"`
	Read      []string `toml:"read,omitempty"`
	Write     []string `toml:"write,omitempty"`
	ReadWrite []string `toml:"readwrite,omitempty"`
	Tokens    []string `toml:"tokens,omitempty"`
	Admin     bool     `toml:"admin,omitempty"`
}

type file struct {
	Users map[string]fileUser `toml:"users"`
}

// Parse reads a users file:
//
//	[users.alice]
//	password = "$2a$10$..."              # bcrypt hash (hub passwd writes it)
//	read = ["nodes/#"]                   # topic filters alice may receive
//	write = ["nodes/+/relay/+/set"]      # ... may publish
//	readwrite = ["lab/#"]                # both
//	tokens = ["sha256:9f86d08..."]       # API tokens, as SHA-256 hashes
//	admin = true                         # the admin view (reading "$SYS/#" gives it too)
//
//	[users.anonymous]                    # clients without credentials
//	read = ["public/#"]
//
// Unknown keys, invalid filters, passwords that are not bcrypt hashes and
// names that cannot be sent in HTTP Basic authentication are refused, with a
// message that names them.
func Parse(data []byte) (*Users, error) {
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadUsersFile, tomltext.Error(err))
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, fmt.Errorf("%w: unknown key %q (a user takes password, read, write, readwrite, tokens, admin)", ErrBadUsersFile, undecoded[0].String())
	}
	u := &Users{byName: make(map[string]*User), byToken: make(map[[sha256.Size]byte]string)}
	for name, fu := range f.Users {
		user, err := fromFile(name, fu)
		if err != nil {
			return nil, fmt.Errorf("%w: user %q: %v", ErrBadUsersFile, name, err)
		}
		if err := u.add(user); err != nil {
			return nil, fmt.Errorf("%w: user %q: %v", ErrBadUsersFile, name, err)
		}
	}
	return u, nil
}

func fromFile(name string, fu fileUser) (*User, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	user := &User{Name: name, PasswordHash: fu.Password, TokenHashes: fu.Tokens, Admin: fu.Admin}
	if name == Anonymous && (fu.Password != "" || len(fu.Tokens) > 0 || fu.Admin) {
		return nil, errors.New("anonymous takes no password, tokens or admin")
	}
	if fu.Password != "" {
		if _, err := bcrypt.Cost([]byte(fu.Password)); err != nil {
			return nil, errors.New("password is not a bcrypt hash (write it with hub passwd)")
		}
	}
	for _, set := range []struct {
		filters []string
		access  Access
	}{{fu.Read, Read}, {fu.Write, Write}, {fu.ReadWrite, Read | Write}} {
		for _, f := range set.filters {
			if err := topics.ValidateFilter(f); err != nil {
				return nil, fmt.Errorf("filter %q: %w", f, err)
			}
			user.Rules = append(user.Rules, Rule{Filter: f, Access: set.access})
		}
	}
	return user, nil
}

// validName accepts names a person can type and HTTP Basic can carry.
func validName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("a user name has 1 to 64 characters")
	}
	for _, r := range name {
		if r == ':' || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return errors.New("a user name has no ':', spaces or control characters")
		}
	}
	return nil
}

func (u *Users) add(user *User) error {
	for _, t := range user.TokenHashes {
		h, err := parseTokenHash(t)
		if err != nil {
			return err
		}
		if other, dup := u.byToken[h]; dup && other != user.Name {
			return fmt.Errorf("token %s is also %q's", t, other)
		}
		u.byToken[h] = user.Name
	}
	u.byName[user.Name] = user
	return nil
}

func parseTokenHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hexed, ok := strings.CutPrefix(s, "sha256:")
	b, err := hex.DecodeString(hexed)
	if !ok || err != nil || len(b) != sha256.Size {
		return h, fmt.Errorf("token %q is not sha256:<64 hex digits>", s)
	}
	copy(h[:], b)
	return h, nil
}

// Load reads and parses the users file at path.
func Load(path string) (*Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the users file: %w", err)
	}
	u, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

// Lookup returns the user called name.
func (u *Users) Lookup(name string) (*User, bool) {
	user, ok := u.byName[name]
	return user, ok
}

// Names returns the users' names, sorted.
func (u *Users) Names() []string {
	names := make([]string, 0, len(u.byName))
	for n := range u.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Marshal writes the users back in the file format, users sorted by name.
func (u *Users) Marshal() []byte {
	var f file
	f.Users = make(map[string]fileUser, len(u.byName))
	for name, user := range u.byName {
		fu := fileUser{Password: user.PasswordHash, Tokens: user.TokenHashes, Admin: user.Admin}
		for _, r := range user.Rules {
			switch r.Access {
			case Read:
				fu.Read = append(fu.Read, r.Filter)
			case Write:
				fu.Write = append(fu.Write, r.Filter)
			default:
				fu.ReadWrite = append(fu.ReadWrite, r.Filter)
			}
		}
		f.Users[name] = fu
	}
	var b bytes.Buffer
	b.WriteString("# motehub users: written by `hub passwd`, which rewrites this file (comments are not kept).\n")
	b.WriteString("# Passwords are bcrypt hashes, tokens SHA-256 hashes; [users.anonymous] is for clients without credentials.\n\n")
	_ = toml.NewEncoder(&b).Encode(f) // a map of plain structs always encodes
	return b.Bytes()
}

// With returns a copy of u where user replaces (or adds) the user of its name.
func (u *Users) With(user *User) (*Users, error) {
	if err := validName(user.Name); err != nil {
		return nil, err
	}
	out := &Users{byName: make(map[string]*User), byToken: make(map[[sha256.Size]byte]string)}
	for name, other := range u.byName {
		if name != user.Name {
			if err := out.add(other); err != nil {
				return nil, err
			}
		}
	}
	if err := out.add(user); err != nil {
		return nil, err
	}
	return out, nil
}

// Without returns a copy of u without the user called name.
func (u *Users) Without(name string) *Users {
	out := &Users{byName: make(map[string]*User), byToken: make(map[[sha256.Size]byte]string)}
	for n, user := range u.byName {
		if n != name {
			_ = out.add(user) // valid in u, valid here
		}
	}
	return out
}

// Empty is a users file with no user: nobody gets in until one is added.
func Empty() *Users {
	return &Users{byName: make(map[string]*User), byToken: make(map[[sha256.Size]byte]string)}
}

// passwordCost is bcrypt's work factor for new hashes (tests lower it).
var passwordCost = bcrypt.DefaultCost

// HashPassword returns the bcrypt hash of a password.
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", errors.New("a password has at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	if err != nil {
		return "", fmt.Errorf("hash the password: %w", err)
	}
	return string(h), nil
}

// NewSecret returns a random password, for a user the hub makes itself (see
// [Authorizer.AddBuiltIn]), and its bcrypt hash. The password has 256
// random bits, so the hash is at bcrypt's lowest cost: a work factor slows
// down guessing passwords that people choose, and would only make each
// login with this one slow (seconds for a few at once on a busy machine).
func NewSecret() (password, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails
	password = base64.RawURLEncoding.EncodeToString(b)
	h, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost) // 43 bytes, within bcrypt's 72
	return password, string(h)
}

// NewToken returns a new API token and the hash to store for it.
func NewToken() (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails
	token = "mh_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, "sha256:" + hex.EncodeToString(sum[:])
}

// WriteFile writes u to path atomically (a temporary file renamed over it),
// readable by its owner only.
func WriteFile(path string, u *Users) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*.toml")
	if err != nil {
		return fmt.Errorf("write the users file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err = tmp.Write(u.Marshal()); err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write the users file: %w", err)
	}
	return nil
}
