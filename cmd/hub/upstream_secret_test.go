package main

import (
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestUpstreamPasswordNeverShown: a replica whose nodes all refuse its
// credentials, given them in a URL of the list (with a comma in it) or with
// --upstream-username and --upstream-password: its log at debug level (the
// "not ready yet" notice included), /readyz and /metrics name the nodes and
// why they refused, never the password.
func TestUpstreamPasswordNeverShown(t *testing.T) {
	const (
		inURL  = "u-Qx7,zz9" // a comma: the list's split must keep it
		inFlag = "f-Kq3pw8w"
	)
	refusing := func() *hubtest.Mosquitto { return hubtest.StartMosquitto(t, "allow_anonymous false") }
	a, b := refusing(), refusing()
	list := "mqtt://hub:" + strings.ReplaceAll(inURL, ",", "%2C") + "@" + a.Addr() + ",mqtt://hub:" + inURL + "@" + b.Addr()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"URL", []string{"--upstream", list}},
		{"flags", []string{"--upstream", a.URL() + "," + b.URL(), "--upstream-username", "hub", "--upstream-password", inFlag}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := launchHub(t, append(c.args, "--log-level", "debug")...)
			var readyz string
			hubtest.Eventually(t, hubtest.Timeout, func() bool {
				status, _, body := get(t, "GET", "http://"+h.HTTP+"/readyz", nil, "")
				readyz = body
				return status == 503 && strings.Contains(body, a.Addr()) && strings.Contains(body, b.Addr())
			}, "/readyz does not name both refusing nodes: %s", readyz)
			_, _, metrics := get(t, "GET", "http://"+h.HTTP+"/metrics", nil, "")
			if err := h.Stop(); err != nil {
				t.Log(err)
			}
			for where, text := range map[string]string{"log": h.Log.String(), "/readyz": readyz, "/metrics": metrics} {
				for _, secret := range []string{"Qx7", "zz9", inFlag} {
					if strings.Contains(text, secret) {
						t.Errorf("%s shows the password (%q):\n%s", where, secret, text)
					}
				}
			}
			if !strings.Contains(h.Log.String(), "not Authorized") {
				t.Errorf("the log does not say why the nodes refused:\n%s", h.Log.String())
			}
		})
	}
}
