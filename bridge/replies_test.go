package bridge_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestRepliesSurviveConfigWithSince: a config/set with since restarts the
// stream from that event; the replies queued before it (a subscribe/ok, an
// error) are still sent, in the order of the requests, before config/ok.
func TestRepliesSurviveConfigWithSince(t *testing.T) {
	h := startRealHub(t, bridge.Config{})
	for run := range 50 {
		ws := hubtest.DialWS(t, h.URL, nil)
		ws.Send(`["clown.talk/-/config/set", {"subscribe": ["r/#"]}]`)
		var ok struct{ ID string }
		if err := json.Unmarshal(ws.Expect("clown.talk/-/config/ok").Payload, &ok); err != nil {
			t.Fatal(err)
		}
		h.publish(t, "r/x", fmt.Sprint(run))
		// One frame: the three requests reach the hub together, as a page's
		// do when it resumes.
		ws.Send(`["clown.talk/-/subscribe", ["s/#"]]` + "\n" +
			`["bad topic/+", 1]` + "\n" +
			fmt.Sprintf(`["clown.talk/-/config/set", {"subscribe": ["r/#", "s/#"], "since": %q}]`, ok.ID))
		var got []string
		for len(got) < 3 {
			f := hubtest.ParseFrame(t, ws.ReadLine())
			switch f.Topic {
			case "clown.talk/-/subscribe/ok", "clown.talk/-/error", "clown.talk/-/config/ok":
				got = append(got, f.Topic)
			}
		}
		if want := []string{"clown.talk/-/subscribe/ok", "clown.talk/-/error", "clown.talk/-/config/ok"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("run %d: replies %v, want %v", run+1, got, want)
		}
		if line := ws.ReadLine(); line != fmt.Sprintf(`["r/x",%d]`, run) {
			t.Fatalf("run %d: after config/ok with since: %s, want the message after it", run+1, line)
		}
		_ = ws.Conn.Close()
	}
}
