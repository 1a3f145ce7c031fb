package broker

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseUpstream(t *testing.T) {
	for _, c := range []struct {
		url, user, password    string // URL and the config's credentials
		want                   string
		wantUser, wantPassword string
		wantTLS                bool
	}{
		{url: "mqtt://broker", want: "mqtt://broker:1883"},
		{url: "mqtt://broker:1884", want: "mqtt://broker:1884"},
		{url: "tcp://10.0.0.1", want: "mqtt://10.0.0.1:1883"},
		{url: "mqtt://[::1]", want: "mqtt://[::1]:1883"},
		{url: "mqtts://broker", want: "mqtts://broker:8883", wantTLS: true},
		{url: "ssl://broker:8884", want: "mqtts://broker:8884", wantTLS: true},
		{url: "tls://broker", want: "mqtts://broker:8883", wantTLS: true},
		{url: "ws://emqx:8083/mqtt", want: "ws://emqx:8083/mqtt"},
		{url: "ws://emqx/mqtt?x=1", want: "ws://emqx:80/mqtt?x=1"},
		{url: "wss://hivemq.example.com/mqtt", want: "wss://hivemq.example.com:443/mqtt", wantTLS: true},
		{url: "mqtt://hub:s%40cret@broker", want: "mqtt://broker:1883", wantUser: "hub", wantPassword: "s@cret"},
		{url: "mqtt://hub@broker", want: "mqtt://broker:1883", wantUser: "hub"},
		{url: "mqtt://url:pw@broker", user: "field", password: "fpw", want: "mqtt://broker:1883", wantUser: "field", wantPassword: "fpw"},
		{url: "mqtt://broker/", want: "mqtt://broker:1883"},
	} {
		up, err := parseURL(c.url, &RemoteConfig{Username: c.user, Password: c.password})
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if got := up.String(); got != c.want {
			t.Errorf("%s: URL %s, want %s", c.url, got, c.want)
		}
		if up.user != c.wantUser || up.password != c.wantPassword {
			t.Errorf("%s: credentials %q/%q, want %q/%q", c.url, up.user, up.password, c.wantUser, c.wantPassword)
		}
		if (up.tls != nil) != c.wantTLS {
			t.Errorf("%s: TLS %v, want %v", c.url, up.tls != nil, c.wantTLS)
		}
	}
}

func TestParseUpstreamRefusesWithoutShowingThePassword(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"", "none given"},
		{"broker:1883", `scheme "broker"`},
		{"http://broker", `scheme "http"`},
		{"mqtt://", "no host"},
		{"mqtt://u:topsecret@broker/path", "no path"},
		{"mqtt://u:topsecret@broker:port", "invalid port"},
		{"mqtt://u:topsecret@broker?q=1", "no path or query"},
		// A password with a character that ends the host: the parser, or the
		// host and path it finds, would repeat the password's start.
		{"mqtt://u:topsecret#x@broker", "percent-encoded"},
		{"mqtt://u:topsecret/x@broker", "percent-encoded"},
		{"mqtt://u:topsecret?x@broker", "percent-encoded"},
		{"wss://u:1234topsecret/x@broker", "percent-encoded"}, // parses: host "u", port "1234topsecret"
		{"wss://u:topsecret/x@broker/mqtt", "percent-encoded"},
		{"mqtt://u:topsecret%zz@broker", "percent-encoded"},
	} {
		_, err := parseURL(c.url, &RemoteConfig{})
		if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want ErrBadURL saying %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%q: the error shows the password: %v", c.url, err)
		}
	}
	if _, err := ConnectRemote(RemoteConfig{URLs: []string{"amqp://broker"}}); !errors.Is(err, ErrBadURL) {
		t.Errorf("ConnectRemote with a bad URL: %v", err)
	}
}

func TestParseUpstreamTLS(t *testing.T) {
	mine := &tls.Config{MinVersion: tls.VersionTLS13}
	up, err := parseURL("mqtts://broker.example", &RemoteConfig{TLS: mine})
	if err != nil {
		t.Fatal(err)
	}
	if up.tls == mine || up.tls.MinVersion != tls.VersionTLS13 || up.tls.ServerName != "broker.example" {
		t.Errorf("TLS %+v: want a copy of the given one with the URL's host as server name", up.tls)
	}
	if mine.ServerName != "" {
		t.Error("the caller's TLS config was changed")
	}
	up, _ = parseURL("wss://broker.example/mqtt", &RemoteConfig{})
	if up.tls.MinVersion != tls.VersionTLS12 || up.tls.ServerName != "broker.example" {
		t.Errorf("default TLS %+v", up.tls)
	}
}

func TestClientIDsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newClientID(DefaultClientIDPrefix)
		if len(id) != 20 || !strings.HasPrefix(id, DefaultClientIDPrefix) || seen[id] {
			t.Fatalf("client id %q: want motehub- and 12 random characters, unique", id)
		}
		seen[id] = true
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	b := backoff{min: 250 * time.Millisecond, max: 10 * time.Second}
	for i, ceil := range []time.Duration{250, 500, 1000, 2000, 4000, 8000, 10000, 10000} {
		ceil *= time.Millisecond
		if d := b.next(); d < ceil/2 || d > ceil {
			t.Errorf("wait %d: %v, want between %v and %v", i+1, d, ceil/2, ceil)
		}
	}
	for range 100 { // no overflow however long it fails
		b.next()
	}
	if d := b.next(); d < 5*time.Second || d > 10*time.Second {
		t.Errorf("after many failures: %v", d)
	}
	b.reset()
	if d := b.next(); d > 250*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
	// Two replicas that failed together do not retry together.
	a, c := backoff{min: time.Second, max: time.Minute}, backoff{min: time.Second, max: time.Minute}
	same := 0
	for range 20 {
		if a.next() == c.next() {
			same++
		}
	}
	if same > 2 {
		t.Errorf("%d of 20 waits were equal: no jitter", same)
	}
}
