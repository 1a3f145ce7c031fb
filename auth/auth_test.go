package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	passwordCost = bcrypt.MinCost // the work factor is bcrypt's business; the tests check the logic
	goleak.VerifyTestMain(m)
}

// testUsers builds a users file with real bcrypt hashes.
func testUsers(t *testing.T) *Users {
	t.Helper()
	hash, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	_, tokenHash := NewToken()
	u, err := Parse([]byte(`
[users.alice]
password = "` + hash + `"
read = ["nodes/#"]
write = ["nodes/+/relay/+/set"]
tokens = ["` + tokenHash + `"]

[users.ops]
password = "` + hash + `"
readwrite = ["#", "$SYS/#"]

[users.anonymous]
read = ["public/#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseRefusesWithAClearMessage(t *testing.T) {
	for input, want := range map[string]string{
		`[users.bob]` + "\n" + `passwd = "x"`:       `unknown key "users.bob.passwd"`,
		`[users.bob]` + "\n" + `password = "plain"`: "not a bcrypt hash",
		`[users.bob]` + "\n" + `read = ["a/#/b"]`:   `filter "a/#/b"`,
		`[users."a b"]`: "no ':', spaces",
		`[users."a:b"]`: "no ':', spaces",
		`[users.anonymous]` + "\n" + `tokens = ["sha256:00"]`: "anonymous takes no password",
		`[users.bob]` + "\n" + `tokens = ["md5:abc"]`:         "sha256:<64 hex digits>",
		`[users.bob]` + "\n" + `read = "nodes/#"`:             "bad users file",
		`not toml at all [`:                                   "bad users file",
	} {
		_, err := Parse([]byte(input))
		if !errors.Is(err, ErrBadUsersFile) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an ErrBadUsersFile mentioning %q", input, err, want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	u := testUsers(t)
	again, err := Parse(u.Marshal())
	if err != nil {
		t.Fatalf("parsing what Marshal wrote: %v\n%s", err, u.Marshal())
	}
	if !reflect.DeepEqual(u.Names(), again.Names()) {
		t.Fatalf("names %v, then %v", u.Names(), again.Names())
	}
	for _, name := range u.Names() {
		a, _ := u.Lookup(name)
		b, _ := again.Lookup(name)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("user %s changed in a round trip: %+v vs %+v", name, a, b)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	a := New(testUsers(t))
	if id, err := a.Authenticate("alice", "correct horse"); err != nil || id != "alice" {
		t.Fatalf("right password: %q, %v", id, err)
	}
	if id, err := a.Authenticate("alice", "correct horse"); err != nil || id != "alice" {
		t.Fatalf("right password, cached: %q, %v", id, err)
	}
	for _, c := range [][2]string{{"alice", "wrong"}, {"mallory", "correct horse"}, {"anonymous", ""}, {"", ""}} {
		if _, err := a.Authenticate(c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrBadCredentials", c[0], c[1], err)
		}
	}
	if id, err := a.Anonymous(); err != nil || id != Anonymous {
		t.Fatalf("anonymous: %q, %v", id, err)
	}
	if _, err := New(Empty()).Anonymous(); !errors.Is(err, ErrNoAnonymous) {
		t.Fatalf("no anonymous entry: %v", err)
	}
}

func TestTokens(t *testing.T) {
	token, hash := NewToken()
	u, err := Empty().With(&User{Name: "script", TokenHashes: []string{hash}, Rules: []Rule{{"a/#", Write}}})
	if err != nil {
		t.Fatal(err)
	}
	a := New(u)
	if id, err := a.AuthenticateToken(token); err != nil || id != "script" {
		t.Fatalf("token: %q, %v", id, err)
	}
	if _, err := a.AuthenticateToken(token + "x"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := a.Authenticate("script", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatal("a token-only user must not log in without a password")
	}
}

func TestDecisions(t *testing.T) {
	a := New(testUsers(t))
	allowed := []struct {
		id     Identity
		access Access
		topic  string
		want   bool
	}{
		{"alice", Read, "nodes/mote-1/relay/i2c0-3b", true},
		{"alice", Write, "nodes/mote-1/relay/i2c0-3b/set", true},
		{"alice", Write, "nodes/mote-1/led/-/state/set", false},
		{"alice", Read, "other/x", false},
		{"alice", Read, "$SYS/broker/uptime", false},
		{"ops", Read, "$SYS/broker/uptime", true},
		{"ops", Write, "anything", true},
		{"anonymous", Read, "public/news", true},
		{"anonymous", Write, "public/news", false},
		{"mallory", Read, "public/news", false},
	}
	for _, tt := range allowed {
		if got := a.Allowed(tt.id, tt.access, tt.topic); got != tt.want {
			t.Errorf("Allowed(%s, %d, %s) = %v", tt.id, tt.access, tt.topic, got)
		}
	}
	subs := []struct {
		id             Identity
		filter         string
		allowed, exact bool
	}{
		{"alice", "nodes/+/relay/#", true, true},
		{"alice", "#", true, false},          // only what alice may read arrives
		{"alice", "+/mote-1/#", true, false}, // overlaps nodes/#
		{"alice", "other/#", false, false},
		{"alice", "$SYS/#", false, false},
		{"ops", "$SYS/#", true, true},
		{"anonymous", "#", true, false},
	}
	for _, tt := range subs {
		if allowed, exact := a.Subscription(tt.id, tt.filter); allowed != tt.allowed || exact != tt.exact {
			t.Errorf("Subscription(%s, %s) = %v, %v; want %v, %v", tt.id, tt.filter, allowed, exact, tt.allowed, tt.exact)
		}
	}
	open := Open()
	if !open.Allowed(Anonymous, Write, "$SYS/x") || open.Enabled() {
		t.Fatal("an open authorizer allows everything and is not enabled")
	}
}

func TestReplaceTakesEffectAtOnce(t *testing.T) {
	u := testUsers(t)
	a := New(u)
	if !a.Allowed("alice", Read, "nodes/x") {
		t.Fatal("alice reads nodes/x")
	}
	a.Replace(u.Without("alice"))
	if a.Known("alice") || a.Allowed("alice", Read, "nodes/x") {
		t.Fatal("a removed user keeps rights")
	}
	if _, err := a.Authenticate("alice", "correct horse"); err == nil {
		t.Fatal("a removed user still logs in (from the password cache?)")
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := WriteFile(path, testUsers(t)); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v, %v; want 0600", info.Mode(), err)
	}
	if u, err := Load(path); err != nil || len(u.Names()) != 3 {
		t.Fatalf("Load = %v, %v", u, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope.toml")); err == nil || !strings.Contains(err.Error(), "read the users file") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// testThrottle is a throttle with the default limits (10 per name and
// address, 100 per address, a minute) on a clock the test moves.
func testThrottle() (*Throttle, *time.Time) {
	now := time.Unix(1000, 0)
	th := NewThrottle(ThrottleConfig{})
	th.now = func() time.Time { return now }
	return th, &now
}

// mustAllow checks that user may try from addr now, without trying.
func mustAllow(t *testing.T, th *Throttle, addr, user string) {
	t.Helper()
	if wait := th.wait(addr, user); wait != 0 {
		t.Fatalf("%s from %s refused (wait %v)", user, addr, wait)
	}
}

// mustRefuse checks that an attempt of user from addr is refused for wait.
func mustRefuse(t *testing.T, th *Throttle, addr, user string, wait time.Duration) {
	t.Helper()
	if ok, got := th.Attempt(addr, user); ok || got != wait {
		t.Fatalf("%s from %s: allowed %v, wait %v; want refused for %v", user, addr, ok, got, wait)
	}
}

// fail is an attempt of user from addr that fails.
func fail(th *Throttle, addr, user string) { th.Attempt(addr, user) }

// succeed is an attempt of user from addr that succeeds.
func succeed(th *Throttle, addr, user string) {
	if ok, _ := th.Attempt(addr, user); ok {
		th.Succeed(addr, user)
	}
}

// TestThrottlePerUser: 10 failures lock a name at one address, and only
// that name at that address.
func TestThrottlePerUser(t *testing.T) {
	th, now := testThrottle()
	for range DefaultFailuresPerUser {
		mustAllow(t, th, "10.0.0.1", "alice")
		fail(th, "10.0.0.1", "alice")
		*now = now.Add(time.Second)
	}
	mustRefuse(t, th, "10.0.0.1", "alice", 50*time.Second) // the window runs from the first failure
	mustAllow(t, th, "10.0.0.1", "bob")
	mustAllow(t, th, "10.0.0.2", "alice")
}

// TestThrottleAddressCeiling: past 100 failures from one address, whatever
// the names, every name waits there; other addresses do not.
func TestThrottleAddressCeiling(t *testing.T) {
	th, now := testThrottle()
	for i := range DefaultFailuresPerAddress {
		name := fmt.Sprintf("user-%d", i%20) // 5 failures each: no name reaches its own limit
		mustAllow(t, th, "10.0.0.1", name)
		fail(th, "10.0.0.1", name)
	}
	*now = now.Add(10 * time.Second)
	mustRefuse(t, th, "10.0.0.1", "bob", 50*time.Second)
	mustRefuse(t, th, "10.0.0.1", "user-1", 50*time.Second)
	mustAllow(t, th, "10.0.0.2", "bob")
}

// TestThrottleSuccessKeepsTheCeiling: a success forgets its own name's
// failures, never the address's: owning one account does not buy guesses.
func TestThrottleSuccessKeepsTheCeiling(t *testing.T) {
	th, _ := testThrottle()
	for range DefaultFailuresPerUser - 1 {
		fail(th, "10.0.0.1", "alice")
	}
	succeed(th, "10.0.0.1", "alice")
	for range DefaultFailuresPerUser - 1 {
		fail(th, "10.0.0.1", "alice")
	}
	mustAllow(t, th, "10.0.0.1", "alice") // 9 since her success

	for i := range DefaultFailuresPerAddress - 2*(DefaultFailuresPerUser-1) {
		fail(th, "10.0.0.1", fmt.Sprintf("guess-%d", i/5))
		succeed(th, "10.0.0.1", "mallory") // the guesser's own account, between guesses
	}
	mustRefuse(t, th, "10.0.0.1", "mallory", time.Minute)
	mustRefuse(t, th, "10.0.0.1", "carol", time.Minute)
}

// TestThrottleWindow: each count runs its own window from its first
// failure; the wait is what is left of the longer one, and a count whose
// window has passed is forgotten.
func TestThrottleWindow(t *testing.T) {
	th, now := testThrottle()
	for i := range DefaultFailuresPerAddress - DefaultFailuresPerUser {
		fail(th, "10.0.0.1", fmt.Sprint(i/5)) // from 0 s: the address's window
	}
	*now = now.Add(30 * time.Second)
	for range DefaultFailuresPerUser {
		fail(th, "10.0.0.1", "alice") // from 30 s: alice's window; the address reaches 100
	}
	*now = now.Add(10 * time.Second)
	mustRefuse(t, th, "10.0.0.1", "alice", 50*time.Second) // alice's 50 s left, the address's 20 s
	mustRefuse(t, th, "10.0.0.1", "bob", 20*time.Second)
	*now = now.Add(20 * time.Second) // 60 s: the address's window has passed, alice's has not
	mustAllow(t, th, "10.0.0.1", "bob")
	mustRefuse(t, th, "10.0.0.1", "alice", 30*time.Second)
	*now = now.Add(30 * time.Second)
	mustAllow(t, th, "10.0.0.1", "alice")
	for range DefaultFailuresPerUser - 1 { // a new window: the old failures do not count
		fail(th, "10.0.0.1", "alice")
	}
	mustAllow(t, th, "10.0.0.1", "alice")

	small := NewThrottle(ThrottleConfig{PerUser: 2, PerAddress: 3, Window: time.Second})
	small.now = th.now
	fail(small, "a", "x")
	fail(small, "a", "x")
	if ok, wait := small.Attempt("a", "x"); ok || wait != time.Second {
		t.Fatalf("a config of 2 per name, 1 s: %v, %v", ok, wait)
	}
	fail(small, "a", "y")
	if ok, _ := small.Attempt("a", "z"); ok {
		t.Fatal("a config of 3 per address: a fourth name allowed")
	}
}

// TestThrottleBounded: 100,000 distinct keys, from as many addresses or
// from one, never make it remember more than maxThrottled of each.
func TestThrottleBounded(t *testing.T) {
	th, now := testThrottle()
	for i := range 100_000 {
		fail(th, fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), "alice")
		fail(th, "10.255.0.1", fmt.Sprintf("name-%d", i))
		if len(th.pairs) > maxThrottled || len(th.addrs) > maxThrottled {
			t.Fatalf("after %d keys: %d pairs, %d addresses remembered; the bound is %d", i+1, len(th.pairs), len(th.addrs), maxThrottled)
		}
		if i%1000 == 0 {
			*now = now.Add(time.Millisecond) // within one window: nothing expires
		}
	}
	if len(th.pairs) == 0 || len(th.addrs) == 0 {
		t.Fatalf("%d pairs, %d addresses: the flood left nothing to count", len(th.pairs), len(th.addrs))
	}
	for range DefaultFailuresPerUser { // and it still counts, by name
		fail(th, "10.0.0.9", "bob")
	}
	mustRefuse(t, th, "10.0.0.9", "bob", time.Minute)
	mustAllow(t, th, "10.0.0.9", "alice")
}

// TestBuiltInUsers: a user the hub adds itself logs in and keeps its
// rights across a reload; a file that defines its name is refused.
func TestBuiltInUsers(t *testing.T) {
	secret, hash := NewSecret()
	if len(secret) < 40 {
		t.Fatalf("NewSecret made %q: too short to be random enough", secret)
	}
	demo := &User{Name: "hub-demo", PasswordHash: hash, Rules: []Rule{{"nodes/#", Read | Write}}}
	u := testUsers(t)
	a := New(u)
	if err := a.AddBuiltIn(demo); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if id, err := a.Authenticate("hub-demo", secret); err != nil || id != "hub-demo" {
			t.Fatalf("%s: the built-in user: %q, %v", when, id, err)
		}
		if !a.Allowed("hub-demo", Write, "nodes/mote-1/asn") || a.Allowed("hub-demo", Read, "other/x") {
			t.Fatalf("%s: the built-in user's rights are not its own", when)
		}
	}
	check("added")
	if err := a.Replace(u.Without("alice")); err != nil {
		t.Fatal(err)
	}
	check("after a reload")
	if a.Known("alice") || !a.Known("ops") {
		t.Fatal("the reload did not take effect")
	}
	clash, err := u.With(&User{Name: "hub-demo", PasswordHash: hash, Rules: []Rule{{"#", Read | Write}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Replace(clash); !errors.Is(err, ErrBuiltInName) || !strings.Contains(err.Error(), `"hub-demo"`) {
		t.Fatalf("a file defining the built-in name: %v, want ErrBuiltInName naming it", err)
	}
	check("after a refused reload")
	if a.Known("alice") {
		t.Fatal("a refused reload changed the users in force")
	}
	if err := New(clash).AddBuiltIn(demo); !errors.Is(err, ErrBuiltInName) {
		t.Fatalf("adding a built-in user the file defines: %v", err)
	}
	if err := Open().AddBuiltIn(demo); err == nil {
		t.Fatal("an open authorizer took a built-in user")
	}

	// A wrong name costs what the dearest password costs, not the secret's.
	costly, _ := bcrypt.GenerateFromPassword([]byte("a person's password"), bcrypt.MinCost+2)
	for range 20 { // whatever order the map gives
		u, _ := Empty().With(&User{Name: "person", PasswordHash: string(costly)})
		u, _ = u.With(demo)
		if cost, err := bcrypt.Cost(u.dummyHash()); err != nil || cost != bcrypt.MinCost+2 {
			t.Fatalf("the hash a wrong name is checked against has cost %d (%v), want %d", cost, err, bcrypt.MinCost+2)
		}
	}
}

// FuzzParseUsers: no users file makes the parser panic, and what it accepts
// survives a round trip through Marshal.
func FuzzParseUsers(f *testing.F) {
	f.Add([]byte("[users.a]\nread = [\"#\"]\n"))
	f.Add([]byte("[users.anonymous]\nreadwrite = [\"a/+\"]\n[users.b]\npassword = \"$2a$10$abcdefghijklmnopqrstuuVnCVk9KzHX1ASsWtlZ2fC5kK7cW4Tq\"\n"))
	f.Add([]byte("[users]\nx = 1\n"))
	f.Add([]byte("users = []"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrBadUsersFile) {
				t.Fatalf("error %v does not wrap ErrBadUsersFile", err)
			}
			return
		}
		again, err := Parse(u.Marshal())
		if err != nil {
			t.Fatalf("accepted %q, but not its own output: %v\n%s", data, err, u.Marshal())
		}
		if !reflect.DeepEqual(u.Names(), again.Names()) {
			t.Fatalf("names changed in a round trip: %v vs %v", u.Names(), again.Names())
		}
	})
}

// BenchmarkThrottle: the check and the failure of one login, under the
// lock every door shares.
func BenchmarkThrottle(b *testing.B) {
	th := NewThrottle(ThrottleConfig{})
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("user-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		addr, name := "10.0.0."+names[i%256][5:], names[i%1024]
		th.Attempt(addr, name)
		i++
	}
}

// TestThrottleParallelGuesses: guesses made at once cannot all pass the
// check before any has failed: an attempt counts from when it is let through.
func TestThrottleParallelGuesses(t *testing.T) {
	th, _ := testThrottle()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if ok, _ := th.Attempt("10.0.0.1", "alice"); ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != DefaultFailuresPerUser {
		t.Fatalf("%d of 200 parallel guesses let through, want %d", n, DefaultFailuresPerUser)
	}
}

// TestThrottleIPv6Network: an IPv6 address counts as its /64, which one
// host can fill with addresses at will.
func TestThrottleIPv6Network(t *testing.T) {
	th, _ := testThrottle()
	for i := range DefaultFailuresPerUser {
		fail(th, fmt.Sprintf("2001:db8:1:2::%x", i+1), "alice")
	}
	mustRefuse(t, th, "2001:db8:1:2:ffff::1", "alice", time.Minute)
	mustAllow(t, th, "2001:db8:1:3::1", "alice")
}

// TestThrottleFloodForgetsLittle: a flood of fresh keys past the bound
// makes room by forgetting a sixteenth of them, not everything.
func TestThrottleFloodForgetsLittle(t *testing.T) {
	th, _ := testThrottle()
	for i := range maxThrottled + 1 {
		fail(th, fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), "alice")
	}
	for name, m := range map[string]map[uint64]failures{"pairs": th.pairs, "addresses": th.addrs} {
		if n := len(m); n < maxThrottled-maxThrottled/16 || n > maxThrottled {
			t.Fatalf("%d %s remembered after a flood of %d, want between %d and %d", n, name, maxThrottled+1, maxThrottled-maxThrottled/16, maxThrottled)
		}
	}
}
