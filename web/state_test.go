package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// startServerWith is startServer with the hub's Config given.
func startServerWith(t testing.TB, cfg bridge.Config) *testServer {
	t.Helper()
	ts, _ := startTestServer(t, broker.Config{MessageRate: -1}, cfg, Config{}) // the benchmark's device publishes fast
	return ts
}

// stateQuery is /api/state?filter=... for filters.
func stateQuery(filters []string) string {
	q := url.Values{"filter": filters}
	return "/api/state?" + q.Encode()
}

type stateAnswer struct {
	ID        string
	Values    []struct{ Topic string }
	Truncated *bool
}

// TestStateFilterCapAndTruncation: /api/state names at most
// MaxSubscriptions filters (the poll and SSE the same, the same answer), and
// an answer cut at MaxStateValues says so, in its body and in a header; one
// that is whole says nothing.
func TestStateFilterCapAndTruncation(t *testing.T) {
	ts := startServerWith(t, bridge.Config{MaxSubscriptions: 4, MaxStateValues: 3})
	for i := range 5 {
		ts.publishMQTT(t, fmt.Sprintf("t/%d", i), fmt.Sprint(i))
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, body := ts.do(t, "GET", "/api/state?filter=t/4", "", "")
		return strings.Contains(body, `"t/4"`)
	}, "the hub did not get the messages")

	resp, err := ts.client.Get(ts.URL + "/api/state?filter=t/%23")
	if err != nil {
		t.Fatal(err)
	}
	var cut stateAnswer
	err = json.NewDecoder(resp.Body).Decode(&cut)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(cut.Values) != 3 || cut.Values[0].Topic != "t/0" || cut.Values[2].Topic != "t/2" ||
		cut.Truncated == nil || !*cut.Truncated || resp.Header.Get("X-Motehub-Truncated") != "true" {
		t.Fatalf("state of 5 topics with a bound of 3 = %d %+v (%v), header %q: want t/0..t/2, truncated",
			resp.StatusCode, cut, err, resp.Header.Get("X-Motehub-Truncated"))
	}

	resp, err = ts.client.Get(ts.URL + stateQuery([]string{"t/1", "t/3", "nothing"}))
	if err != nil {
		t.Fatal(err)
	}
	var whole stateAnswer
	err = json.NewDecoder(resp.Body).Decode(&whole)
	resp.Body.Close()
	if err != nil || len(whole.Values) != 2 || whole.Truncated != nil || resp.Header.Get("X-Motehub-Truncated") != "" {
		t.Fatalf("a whole answer = %+v (%v), header %q: want 2 values and no truncation", whole, err, resp.Header.Get("X-Motehub-Truncated"))
	}

	five := []string{"a", "b", "c", "d", "e"}
	for _, path := range []string{stateQuery(five), "/api/poll?wait=0&" + strings.TrimPrefix(stateQuery(five), "/api/state?"),
		"/events?" + strings.TrimPrefix(stateQuery(five), "/api/state?")} {
		status, body := ts.do(t, "GET", path, "", "")
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body), &e); status != http.StatusTooManyRequests || err != nil || e.Error.Code != bridge.CodeLimit {
			t.Errorf("%s with 5 filters, 4 allowed = %d %s, want 429 limit", path, status, body)
		}
	}
	if status, body := ts.do(t, "GET", stateQuery(five[:4]), "", ""); status != 200 {
		t.Fatalf("4 filters, 4 allowed = %d %s", status, body)
	}
}

// largestStateQuery is a state query of 256 filters, the most one request
// may name: exact topics from a window that moves with n over the 10,000
// kept ones, and wildcards. Each call names filters the hub has not seen
// for a while, so the hub subscribed on demand keeps planning.
func largestStateQuery(n int) []string {
	filters := make([]string, 0, 256)
	for i := range 200 {
		filters = append(filters, fmt.Sprintf("load/%d/v", (n*200+i)%10000))
	}
	for i := range 56 {
		j := (n*56 + i) % 10000
		switch i % 3 {
		case 0:
			filters = append(filters, fmt.Sprintf("load/%d/#", j))
		case 1:
			filters = append(filters, fmt.Sprintf("+/%d/v", j))
		default:
			filters = append(filters, fmt.Sprintf("load/+/x%d", j))
		}
	}
	return filters
}

// loadedHub is a hub subscribed on demand on the embedded broker, holding
// the last values of 10,000 retained topics, with 40 streams watching 250 of
// them each, and a subscriber to dev/t.
func loadedHub(t testing.TB) (*testServer, *hubtest.SSE) {
	ts := startServerWith(t, bridge.Config{SubscribeOnDemand: true, SubscribeLinger: time.Second})
	for i := range 10000 {
		if err := ts.Broker.Publish(context.Background(), bridge.Message{Topic: fmt.Sprintf("load/%d/v", i), Payload: []byte(fmt.Sprint(i)), Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	all := hubtest.DialSSE(t, ts.URL+"/events?filter=load/%23", nil) // the hub follows load/#: it holds every value
	t.Cleanup(all.Close)
	// 10,000 retained messages to the new follower: seconds on a loaded
	// machine under the race detector.
	hubtest.Eventually(t, 3*hubtest.Timeout, func() bool {
		var st stateAnswer
		resp, err := ts.client.Get(ts.URL + "/api/state?filter=load/%23")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.Values) == 10000
	}, "the hub does not hold the 10,000 values")
	// Forty dashboards each watch 250 topics of their own: 10,000 distinct
	// filters the hub's subscription planning goes over.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for k := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			filters := make([]string, 250)
			for i := range filters {
				filters[i] = fmt.Sprintf("load/%d/v", k*250+i)
			}
			s, err := hubtest.TryDialSSE(ts.URL+"/events?"+url.Values{"filter": filters}.Encode(), nil)
			if err == nil {
				t.Cleanup(s.Close)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sub := hubtest.DialSSE(t, ts.URL+"/events?filter=dev/t", nil)
	t.Cleanup(sub.Close)
	return ts, sub
}

// hammerState requests the largest allowed state query over and over until
// stop is closed, and returns how many answers came; ended is closed when
// it returns (at stop, or failing).
func hammerState(t testing.TB, ts *testServer, stop <-chan struct{}) (answered *atomic.Int64, ended <-chan struct{}) {
	answered = new(atomic.Int64)
	done := make(chan struct{})
	client := &http.Client{Timeout: time.Minute}
	go func() {
		defer close(done)
		defer client.CloseIdleConnections()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get(ts.URL + stateQuery(largestStateQuery(n)))
			if err != nil {
				t.Errorf("state: %v", err)
				return
			}
			var st stateAnswer
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("state = %d %v", resp.StatusCode, err)
				return
			}
			answered.Add(1)
		}
	}()
	return answered, done
}

// TestStateReadsDoNotStallPublishes: while a client asks for the largest
// allowed state query over and over, against 10,000 kept topics, on a hub
// subscribed on demand (so that every request also makes the hub plan its
// Bus subscriptions, over thousands of filters), every device publish
// reaches its subscriber within a deadline generous for a loaded machine.
// On the hub that scanned and planned under its one lock, a publish waited
// seconds.
func TestStateReadsDoNotStallPublishes(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 topics")
	}
	ts, sub := loadedHub(t)
	device := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "stall-device")

	stop := make(chan struct{})
	answered, ended := hammerState(t, ts, stop)
	defer func() { close(stop); <-ended }()

	// Publishes paced through the requests (the pace is not a wait for
	// anything): each must arrive within the deadline, until the state
	// requests have gone on for a while.
	const deadline = 3 * time.Second
	pace := time.NewTicker(20 * time.Millisecond)
	defer pace.Stop()
	var worst time.Duration
	for i := 0; i < 20 || answered.Load() < 8; i++ {
		select {
		case <-pace.C:
		case <-ended:
			t.Fatal("the state requests failed")
		}
		start := time.Now()
		hubtest.PublishMQTT(t, device, "dev/t", 0, false, []byte(fmt.Sprint(i)))
		for {
			ev, err := sub.Next(deadline - time.Since(start))
			if err != nil {
				t.Fatalf("publish %d did not reach its subscriber within %v while state was read (%d state answers so far): %v",
					i, deadline, answered.Load(), err)
			}
			if ev.Data == fmt.Sprintf(`["dev/t",%d]`, i) {
				break
			}
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest publish to subscriber: %v; %d state answers", worst, answered.Load())
}

// BenchmarkPublishLatencyUnderStateReads: how long a device's publish takes
// to reach a subscriber on the loaded hub of TestStateReadsDoNotStallPublishes,
// alone and while a client asks for the largest allowed state query over
// and over: p50 and p99 of each. Run it for seconds (-benchtime 10s): a
// state request on this hub takes about a second.
func BenchmarkPublishLatencyUnderStateReads(b *testing.B) {
	ts, sub := loadedHub(b)
	device := hubtest.ConnectMQTT(b, ts.Broker.Addr().String(), "bench-device")
	n := 0
	measure := func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			n++
			want := fmt.Sprintf(`["dev/t",%d]`, n)
			start := time.Now()
			hubtest.PublishMQTT(b, device, "dev/t", 0, false, []byte(fmt.Sprint(n)))
			for {
				ev, err := sub.Next(hubtest.Timeout)
				if err != nil {
					b.Fatal(err)
				}
				if ev.Data == want {
					break
				}
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("alone", measure)
	b.Run("state-reads", func(b *testing.B) {
		stop := make(chan struct{})
		answered, ended := hammerState(b, ts, stop)
		defer func() { close(stop); <-ended }()
		hubtest.Eventually(b, time.Minute, func() bool { return answered.Load() >= 2 }, "no state answer")
		measure(b)
		b.ReportMetric(float64(answered.Load()), "state-answers")
	})
}
