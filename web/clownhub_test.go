package web

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestClownHubBase holds the escape rule of the Clown.Hub path: "_" is "/",
// "__" an underscore in a level, longer runs and slashes refused.
func TestClownHubBase(t *testing.T) {
	for _, c := range []struct {
		rest, base, err string
	}{
		{"", "", ""},
		{"_nodes_bridge_0", "nodes/bridge/0", ""},
		{"_nodes", "nodes", ""},
		{"_home_living__room_lamp", "home/living_room/lamp", ""},
		{"_a__b__c", "a_b_c", ""},
		{"_relay:i2c0-3b", "relay:i2c0-3b", ""},
		{"_a_", "a/", ""}, // an empty level: refused by the hub's check of a base
		{"__a", "/a", ""}, // the first "_" ends the name: an empty first level, refused likewise
		{"_a___b", "", "3 underscores in a row"},
		{"_a____b", "", "4 underscores in a row"},
		{"_a/b", "", `holds a "/"`},
		{"_nodes_bridge_0/", "", `holds a "/"`},
		{"x", "", "want clown-talk-server_ followed by"},
	} {
		base, err := clownHubBase(c.rest)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("clownHubBase(%q): %v", c.rest, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("clownHubBase(%q) = %q, %v; want an error with %q", c.rest, base, err, c.err)
		case c.err == "" && base != c.base:
			t.Errorf("clownHubBase(%q) = %q, want %q", c.rest, base, c.base)
		}
	}
}

// TestClownHubRefusals: what the aliases answer before any WebSocket
// handshake, each a JSON error: ambiguous and invalid names 400, the /auth
// form without credentials 401 with a Basic challenge (what makes a browser
// send the URL's credentials) even when an anonymous entry exists, a wrong
// password 401.
func TestClownHubRefusals(t *testing.T) {
	users, err := auth.Parse([]byte(`
[users.anonymous]
read = ["public/#"]
[users.clown]
password = "` + hubtest.PasswordHash(t, "bigclown") + `"
readwrite = ["nodes/bridge/0/#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	authz := auth.New(users)
	ts, _ := startTestServer(t, broker.Config{}, bridge.Config{Authorizer: authz}, Config{Authorizer: authz})

	for _, c := range []struct {
		path, user, password string
		status               int
		code, message        string
	}{
		{"/clown-talk-server_a___b", "", "", 400, bridge.CodeBadTopic, "3 underscores in a row"},
		{"/auth/clown-talk-server_a___b", "clown", "bigclown", 400, bridge.CodeBadTopic, "can be read more than one way"},
		{"/clown-talk-server_nodes%2Fbridge", "", "", 400, bridge.CodeBadTopic, `holds a "/"`},
		{"/clown-talk-server_nodes_", "", "", 400, bridge.CodeBadTopic, "invalid base topic"},
		{"/auth/clown-talk-server_nodes_bridge_0", "", "", 401, bridge.CodeUnauthorized, "needs a user name and password"},
		{"/auth/clown-talk-server_nodes_bridge_0", "clown", "wrong-password", 401, bridge.CodeUnauthorized, ""},
		{"/clown-talk-server_nodes_bridge_0", "clown", "wrong-password", 401, bridge.CodeUnauthorized, ""},
		// Credentials right and the name good: what is left is the missing
		// WebSocket handshake, answered by the hub's upgrader.
		{"/auth/clown-talk-server_nodes_bridge_0", "clown", "bigclown", 400, "", ""},
	} {
		req, err := http.NewRequest(http.MethodGet, ts.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.user != "" {
			req.SetBasicAuth(c.user, c.password)
		}
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("GET %s as %q: %d %s, want %d", c.path, c.user, resp.StatusCode, body, c.status)
			continue
		}
		if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s as %q: 401 without a WWW-Authenticate challenge", c.path, c.user)
		}
		if c.code == "" {
			continue
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.message) {
			t.Errorf("GET %s as %q: %s; want code %q with %q", c.path, c.user, body, c.code, c.message)
		}
	}
}
