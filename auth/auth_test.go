package auth

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
	if _, err := Load(filepath.Join(t.TempDir(), "nope.toml")); err == nil || !strings.Contains(err.Error(), "read users file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := NewThrottle(3, time.Minute)
	th.now = func() time.Time { return now }
	for range 3 {
		if ok, _ := th.Allow("10.0.0.1"); !ok {
			t.Fatal("refused before the limit")
		}
		th.Fail("10.0.0.1")
	}
	if ok, wait := th.Allow("10.0.0.1"); ok || wait != time.Minute {
		t.Fatalf("after 3 failures: %v, wait %v", ok, wait)
	}
	if ok, _ := th.Allow("10.0.0.2"); !ok {
		t.Fatal("another address is throttled too")
	}
	now = now.Add(time.Minute)
	if ok, _ := th.Allow("10.0.0.1"); !ok {
		t.Fatal("still refused after the window")
	}
	th.Fail("10.0.0.3")
	th.Succeed("10.0.0.3")
	if len(th.fails) != 0 {
		t.Fatalf("remembered %d addresses", len(th.fails))
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
