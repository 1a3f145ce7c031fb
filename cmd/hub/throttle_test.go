package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

const bobPassword = "bob-secret"

// writeUsersWithBob is writeUsers (no anonymous entry) plus bob, who reads
// nodes/#.
func writeUsersWithBob(t *testing.T) string {
	t.Helper()
	path, _ := writeUsers(t, false)
	appendUsers(t, path, fmt.Sprintf("[users.bob]\npassword = %q\nread = [\"nodes/#\"]\n", hubtest.PasswordHash(t, bobPassword)))
	return path
}

func appendUsers(t *testing.T, path, entries string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + entries); err != nil {
		t.Fatal(err)
	}
}

// login posts the dashboard's login form and returns the status, the
// Retry-After header and the body.
func login(t *testing.T, h *runningHub, user, password string) (int, string, string) {
	t.Helper()
	status, hdr, body := get(t, "POST", "http://"+h.HTTP+"/login",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		url.Values{"user": {user}, "password": {password}, "next": {"/"}}.Encode())
	return status, hdr.Get("Retry-After"), body
}

// basicState asks /api/state with HTTP Basic and returns the status, the
// Retry-After header and the body.
func basicState(t *testing.T, h *runningHub, user, password string) (int, string, string) {
	t.Helper()
	status, hdr, body := get(t, "GET", "http://"+h.HTTP+"/api/state?filter=nodes/%23",
		http.Header{"Authorization": {basic(user, password)}}, "")
	return status, hdr.Get("Retry-After"), body
}

// mustLogIn: user gets in through both HTTP doors.
func mustLogIn(t *testing.T, h *runningHub, user, password, when string) {
	t.Helper()
	if status, _, body := login(t, h, user, password); status != http.StatusSeeOther {
		t.Fatalf("%s: POST /login as %s: %d %.200s, want 303", when, user, status, body)
	}
	if status, _, body := basicState(t, h, user, password); status != http.StatusOK {
		t.Fatalf("%s: Basic as %s on /api/state: %d %.200s, want 200", when, user, status, body)
	}
}

// mustWait: user's right password is refused with 429 and a Retry-After of
// at most the window.
func mustWait(t *testing.T, h *runningHub, user, password, when string) {
	t.Helper()
	for door, try := range map[string]func(*testing.T, *runningHub, string, string) (int, string, string){"POST /login": login, "Basic": basicState} {
		status, retry, body := try(t, h, user, password)
		if secs, err := strconv.Atoi(retry); status != http.StatusTooManyRequests || err != nil || secs < 1 || secs > 60 {
			t.Fatalf("%s: %s as %s with the right password: %d, Retry-After %q, %.200s; want 429 with Retry-After 1 to 60 s", when, door, user, status, retry, body)
		}
		if door == "Basic" && errorCode(body) != "rate-limited" {
			t.Fatalf("%s: Basic as %s: %s, want a rate-limited JSON error", when, user, body)
		}
	}
}

// mqttRefused connects over MQTT and wants a refused CONNECT.
func mqttRefused(t *testing.T, h *runningHub, clientID, user, password string) {
	t.Helper()
	c, err := hubtest.ConnectMQTTAs(h.MQTT, clientID, user, password)
	if err == nil {
		c.Disconnect(0)
		t.Fatalf("MQTT CONNECT as %q got in", user)
	}
	if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "not authorized") && !strings.Contains(msg, "bad user name or password") {
		t.Fatalf("MQTT CONNECT as %q: %v, want refused as not authorized", user, err)
	}
}

// TestFailedMQTTLoginsLeaveHTTPAlone: 20 refused MQTT CONNECTs from
// 127.0.0.1 (a wrong password for mallory, and anonymous ones where the
// users file has no anonymous entry) do not stop alice logging in over HTTP
// from the same address.
func TestFailedMQTTLoginsLeaveHTTPAlone(t *testing.T) {
	h := startHub(t, "--users", writeUsersWithBob(t))
	for i := range 10 {
		mqttRefused(t, h, fmt.Sprintf("mallory-%d", i), "mallory", "guess")
		mqttRefused(t, h, fmt.Sprintf("anon-%d", i), "", "")
	}
	for range 20 { // nor do requests without credentials
		if status, _, _ := get(t, "GET", "http://"+h.HTTP+"/api/state", nil, ""); status != http.StatusUnauthorized {
			t.Fatalf("no credentials: %d, want 401", status)
		}
	}
	mustLogIn(t, h, "alice", alicePassword, "after 20 refused MQTT CONNECTs")
	if c, err := hubtest.ConnectMQTTAs(h.MQTT, "alice-mqtt", "alice", alicePassword); err != nil {
		t.Fatalf("alice over MQTT: %v", err)
	} else {
		c.Disconnect(0)
	}

	// No credentials is no guess: past the address's ceiling of 100, still
	// not counted.
	for i := range 100 {
		mqttRefused(t, h, fmt.Sprintf("anon-more-%d", i), "", "")
	}
	mustLogIn(t, h, "alice", alicePassword, "after 110 refused anonymous MQTT CONNECTs")
}

// TestLoginThrottlePerUser: wrong passwords for alice, over MQTT and HTTP
// alike, lock alice out after 10 (429 with Retry-After, MQTT refused), but
// not bob behind the same address.
func TestLoginThrottlePerUser(t *testing.T) {
	h := startHub(t, "--users", writeUsersWithBob(t))
	for i := range 5 {
		mqttRefused(t, h, fmt.Sprintf("guess-%d", i), "alice", "guess")
		if status, _, _ := basicState(t, h, "alice", "guess"); status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d for alice: %d, want 401", 2*i+2, status)
		}
	}
	status, retry, body := login(t, h, "alice", "guess") // the 11th
	if status != http.StatusTooManyRequests || retry == "" || !strings.Contains(body, "Too many failed attempts") {
		t.Fatalf("the 11th wrong password for alice: %d, Retry-After %q; want 429 with Retry-After", status, retry)
	}
	mustWait(t, h, "alice", alicePassword, "alice after 11 wrong passwords")
	mqttRefused(t, h, "alice-right", "alice", alicePassword)
	mustLogIn(t, h, "bob", bobPassword, "bob after alice is locked")

	// The reserved name "anonymous" with a password is a guess like any.
	for i := range 5 {
		mqttRefused(t, h, fmt.Sprintf("anonymous-%d", i), "anonymous", "guess")
		if status, _, _ := basicState(t, h, "anonymous", "guess"); status != http.StatusUnauthorized {
			t.Fatalf("Basic as anonymous %d: %d, want 401", i, status)
		}
	}
	if status, retry, _ := basicState(t, h, "anonymous", "guess"); status != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("the 11th try as anonymous with a password: %d, Retry-After %q; want 429", status, retry)
	}
	mustLogIn(t, h, "bob", bobPassword, "bob after 10 tries as anonymous")
}

// TestLoginThrottlePerAddress: failures spread over many names (never 10 on
// one) and tokens lock the whole address at 100, whichever door they come
// through, and bob's own successful logins in between do not reset the
// count.
func TestLoginThrottlePerAddress(t *testing.T) {
	h := startHub(t, "--users", writeUsersWithBob(t))
	for i := range 99 {
		name := fmt.Sprintf("user-%d", i/9) // at most 9 failures each: no name locked on its own
		switch i % 3 {
		case 0:
			mqttRefused(t, h, fmt.Sprintf("c-%d", i), name, "guess")
		case 1:
			if status, _, _ := basicState(t, h, name, "guess"); status != http.StatusUnauthorized {
				t.Fatalf("failure %d (%s): %d, want 401", i+1, name, status)
			}
		default:
			bogus := http.Header{"Authorization": {fmt.Sprintf("Bearer mh_bogus%d", i)}}
			if status, _, _ := get(t, "GET", "http://"+h.HTTP+"/api/state", bogus, ""); status != http.StatusUnauthorized {
				t.Fatalf("failure %d (a token that does not exist): %d, want 401", i+1, status)
			}
		}
		if i%20 == 0 {
			mustLogIn(t, h, "bob", bobPassword, fmt.Sprintf("after %d failures from the address", i+1))
		}
	}
	mustLogIn(t, h, "bob", bobPassword, "after 99 failures from the address")
	if status, _, _ := login(t, h, "zed", "guess"); status != http.StatusUnauthorized {
		t.Fatalf("the 100th failure: %d, want 401", status)
	}
	mustWait(t, h, "bob", bobPassword, "bob after 100 failures from the address")
	mqttRefused(t, h, "bob-mqtt", "bob", bobPassword)
}

var moteConnected = regexp.MustCompile(`msg=connected component=motesim mote=mote-\d`)

// TestDemoWithUsers: hub --demo --users works as it is: the simulated motes
// log in as a built-in user (written nowhere), their readings reach alice,
// alice's own login still works, and a reload keeps the motes connected and
// publishing; a users file that defines the built-in name is refused with a
// message that names it, at start and at a reload.
func TestDemoWithUsers(t *testing.T) {
	users := writeUsersWithBob(t)
	before := string(mustRead(t, users))
	h := startHub(t, "--demo", "--demo-motes", "2", "--users", users)
	if !strings.Contains(h.Log.String(), "user=hub-demo") {
		t.Errorf("the log does not say which user the motes log in as:\n%s", h.Log)
	}
	temperature := func(mote string) bool {
		status, _, body := basicState(t, h, "alice", alicePassword)
		return status == http.StatusOK && strings.Contains(body, `"nodes/`+mote+`/thermometer/0:1/temperature"`)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return temperature("mote-1") && temperature("mote-2") },
		"the motes' temperatures never reached alice; log:\n%s", h.Log)
	mustLogIn(t, h, "alice", alicePassword, "with the demo on")
	if after := string(mustRead(t, users)); after != before {
		t.Fatalf("the users file changed:\n%s", after)
	}

	// A reload keeps the motes' user: no mote is disconnected, and they go on.
	connects := len(moteConnected.FindAllString(h.Log.String(), -1))
	if connects < 2 {
		t.Fatalf("%d mote connections before the reload, want at least 2:\n%s", connects, h.Log)
	}
	reloads := strings.Count(h.Log.String(), "users reloaded")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil { // run's reload listens for it
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return strings.Count(h.Log.String(), "users reloaded") > reloads },
		"no reload after SIGHUP:\n%s", h.Log)
	ws := hubtest.DialWS(t, h.wsURL("/ws"), http.Header{"Authorization": {basic("alice", alicePassword)}})
	ws.Send(`["clown.talk/-/config/set", {"subscribe": ["nodes/+/asn"]}]`)
	ws.Expect("clown.talk/-/config/ok")
	for _, mote := range []string{"mote-1", "mote-2"} {
		ws.Expect("nodes/" + mote + "/asn") // published after the reload: asn is not retained
	}
	if regexp.MustCompile(`msg="mqtt client disconnected" client=motesim-`).MatchString(h.Log.String()) {
		t.Fatalf("a mote was disconnected by the reload:\n%s", h.Log)
	}
	if n := len(moteConnected.FindAllString(h.Log.String(), -1)); n != connects {
		t.Fatalf("%d mote connections after the reload, want still %d: a mote had to reconnect\n%s", n, connects, h.Log)
	}

	// A users file that takes the name: the reload is refused, the motes stay.
	appendUsers(t, users, fmt.Sprintf("[users.hub-demo]\npassword = %q\nreadwrite = [\"#\"]\n", hubtest.PasswordHash(t, "taken")))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return strings.Contains(h.Log.String(), `msg="users file not reloaded: the users in force stay"`) && strings.Contains(h.Log.String(), `\"hub-demo\"`)
	}, "a users file defining hub-demo was not refused by name:\n%s", h.Log)
	ws.Expect("nodes/mote-1/asn")

	err := run(t.Context(), []string{"--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", "", "--demo", "--users", users}, &hubtest.LogBuffer{})
	if err == nil || !strings.Contains(err.Error(), `"hub-demo"`) || !strings.Contains(err.Error(), "--demo") {
		t.Fatalf("--demo with a users file that defines hub-demo: %v, want a refusal naming it", err)
	}
	if strings.Contains(h.Log.String(), "password=") {
		t.Fatalf("a password in the log:\n%s", h.Log)
	}
}
