package broker

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestRemoteAsksAgainForARefusedFilter: a filter the broker refuses as the
// Remote makes it again after a reconnect (a NATS node still electing its
// stream's leader does for a few seconds after another node died) is asked
// for again while the connection lasts, and once the broker grants it the
// hub is told of a gap: its messages did not arrive meanwhile.
func TestRemoteAsksAgainForARefusedFilter(t *testing.T) {
	fb := startFakeBroker(t, nil)
	statuses := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{fb.URL()}, OnStatus: statuses.record}, true)
	if s := statuses.next(t); !s.Up {
		t.Fatalf("first status %+v, want up", s)
	}
	nop := func(bridge.Message) {}
	if _, err := r.Subscribe("refused/#", nop); err != nil {
		t.Fatal(err)
	}

	// attempts counts the SUBSCRIBEs of filter, and those granted.
	attempts := func(filter string) (all, granted int) {
		for _, s := range fb.subscriptions() {
			if s.Filter == filter {
				all++
				if s.Granted {
					granted++
				}
			}
		}
		return all, granted
	}
	refused := "refused/#"
	fb.refuse.Store(&refused)
	before, _ := attempts(refused)
	fb.dropAll()
	if s := statuses.next(t); s.Up {
		t.Fatalf("status %+v, want the loss", s)
	}
	if s := statuses.next(t); !s.Up || !s.Gap {
		t.Fatalf("status %+v, want up with a gap", s)
	}
	if r.Ready() != nil {
		t.Fatalf("not ready with one filter refused: %v", r.Ready())
	}
	// Refused on the reconnect, and asked for again, more than once.
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		if all, granted := attempts(refused); all-before < 3 || granted != 1 {
			return fmt.Errorf("%s: %d SUBSCRIBEs since the reconnect (%d granted in all), want ≥ 3 refused", refused, all-before, granted)
		}
		return nil
	})

	// Granted: a gap, since its messages did not arrive meanwhile.
	fb.refuse.Store(nil)
	if s := statuses.next(t); !s.Up || !s.Gap {
		t.Fatalf("status %+v, want up with a gap once the filter is granted", s)
	}
	if _, granted := attempts(refused); granted != 2 {
		t.Fatalf("%s granted %d times, want 2 (before the reconnect, and now)", refused, granted)
	}
}

// TestRemoteTakesARefusedFilterThatDelivers: a broker that refused a
// subscription as it was made again but delivers its messages all the same
// (a NATS node whose storage made it after the SUBACK's deadline) is taken
// at its deed: the filter counts as granted, the hub is told of a gap, and
// it is not asked for again (NATS would then deliver again what it had
// delivered, older after newer).
func TestRemoteTakesARefusedFilterThatDelivers(t *testing.T) {
	fb := startFakeBroker(t, nil)
	statuses := newStatusLog()
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{fb.URL()}, OnStatus: statuses.record, MaxReconnectInterval: time.Hour}, true)
	if s := statuses.next(t); !s.Up {
		t.Fatalf("first status %+v, want up", s)
	}
	got := make(chan bridge.Message, 16)
	if _, err := r.Subscribe("refused/#", func(m bridge.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	refused := "refused/#"
	fb.refuse.Store(&refused)
	fb.dropAll()
	if s := statuses.next(t); s.Up {
		t.Fatalf("status %+v, want the loss", s)
	}
	if s := statuses.next(t); !s.Up || !s.Gap {
		t.Fatalf("status %+v, want up with a gap", s)
	}
	fb.send("refused/a", "1")
	if m := hubtest.Receive(t, got, hubtest.Timeout, "the message on the refused filter"); m.Topic != "refused/a" {
		t.Fatalf("got %q", m.Topic)
	}
	if s := statuses.next(t); !s.Up || !s.Gap {
		t.Fatalf("status %+v, want up with a gap once the refused filter delivers", s)
	}
	// Taken as granted, the filter leaves the retries: once the gap is
	// reported, the Remote's goroutine has no refused filter left, and no
	// retry comes after it. (One may have come before: a retry is due a
	// second after the reconnect, and a loaded machine can take that long
	// to get the message through.)
	if n := r.refused.n.Load(); n != 0 {
		t.Fatalf("%d filters still refused once the refused filter delivered, want none", n)
	}
	all := 0
	for _, s := range fb.subscriptions() {
		if s.Filter == refused {
			all++
		}
	}
	if all < 2 {
		t.Fatalf("%s subscribed %d times, want 2 or more (before the reconnect, on it, and any retry before the message)", refused, all)
	}
}

// TestRefusedWatchKeepsWhatArrivedDuringARetry: a message on a refused
// filter that arrives while the filter is asked for again (and refused
// again) still counts; one on a filter no longer refused does not.
func TestRefusedWatchKeepsWhatArrivedDuringARetry(t *testing.T) {
	w := refusedWatch{wake: make(chan struct{}, 1)}
	w.watch([]string{"a/#", "b/#"})
	w.saw("a/1")
	w.watch([]string{"a/#", "b/#"}) // the retry's answer: both refused still
	if got := w.delivering(); !slices.Equal(got, []string{"a/#"}) {
		t.Fatalf("delivering %q after the retry, want a/#", got)
	}
	w.watch([]string{"b/#"})
	if got := w.delivering(); len(got) != 0 {
		t.Fatalf("delivering %q once a/# is no longer refused, want none", got)
	}
}
