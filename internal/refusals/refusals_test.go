package refusals_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/motehub/motehub/internal/hubtest"
	"github.com/motehub/motehub/internal/refusals"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// record is a line as a handler got it.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recorder is a slog.Handler that keeps what it gets.
type recorder struct {
	mu      sync.Mutex
	records []record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, record{rec.Level, rec.Message, attrs})
	return nil
}

func (r *recorder) lines() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), r.records...)
}

var summaryLine = regexp.MustCompile(`^\.\.\. and (\d+) more from (.+) in the last (.+)$`)

// split sorts lines into refusal lines and summaries, and sums what the
// summaries count.
func split(t *testing.T, lines []record) (refused []record, summaries []record, counted int) {
	t.Helper()
	for _, l := range lines {
		if l.level != slog.LevelWarn {
			t.Errorf("line at %v, want WARN: %+v", l.level, l)
		}
		if m := summaryLine.FindStringSubmatch(l.msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			counted += n
			summaries = append(summaries, l)
			continue
		}
		refused = append(refused, l)
	}
	return refused, summaries, counted
}

func newLog(t *testing.T, cfg refusals.Config) (*refusals.Log, *recorder, *hubtest.Clock) {
	t.Helper()
	rec := &recorder{}
	cfg.Logger = slog.New(rec)
	l := refusals.New(cfg)
	c := hubtest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	refusals.SetClock(l, c.Now)
	t.Cleanup(l.Close)
	return l, rec, c
}

// TestOneLinePerRefusal: a refusal is one WARN line with the door, the
// address, the user and the reason, and the details given; nothing else.
func TestOneLinePerRefusal(t *testing.T) {
	l, rec, _ := newLog(t, refusals.Config{})
	l.Refused(refusals.MQTT, "192.0.2.7:40001", "alice", "wrong user name or password", slog.String("code", "0x86"))
	l.CutOff(refusals.WebSocket, "192.0.2.8:40002", "", "slow")

	lines := rec.lines()
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %+v", len(lines), lines)
	}
	want := []record{
		{slog.LevelWarn, "refused", map[string]string{"door": "mqtt", "remote": "192.0.2.7:40001", "user": "alice",
			"reason": "wrong user name or password", "code": "0x86"}},
		{slog.LevelWarn, "cut off", map[string]string{"door": "websocket", "remote": "192.0.2.8:40002", "reason": "slow"}},
	}
	for i, w := range want {
		if got := lines[i]; got.level != w.level || got.msg != w.msg || fmt.Sprint(got.attrs) != fmt.Sprint(w.attrs) {
			t.Errorf("line %d: %+v, want %+v", i, got, w)
		}
	}
}

// TestLongFieldsAreCut: what clients send (a 64 KiB MQTT user name, a long
// origin in a reason) does not make a long line.
func TestLongFieldsAreCut(t *testing.T) {
	l, rec, _ := newLog(t, refusals.Config{})
	long := strings.Repeat("é", 40000)
	l.Refused(refusals.MQTT, "192.0.2.7:1", long, "pages from "+long)
	lines := rec.lines()
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1", len(lines))
	}
	user, reason := lines[0].attrs["user"], lines[0].attrs["reason"]
	if len(user) > 64+len("…") || len(reason) > 256+len("…") || !strings.HasSuffix(user, "…") {
		t.Errorf("user of %d bytes, reason of %d bytes: not cut (%q)", len(user), len(reason), user)
	}
	if !strings.HasPrefix(reason, "pages from é") || strings.ContainsRune(user, '\uFFFD') || strings.ContainsRune(reason, '\uFFFD') {
		t.Errorf("cut in the middle of a character: %q / %q", user, reason)
	}
}

// TestRepeatedRefusalsAreSummarised: past PerAddress lines, refusals from an
// address are counted, whatever the door; the first report after the
// window sums them up, before its own line; another address keeps its own
// lines meanwhile.
func TestRepeatedRefusalsAreSummarised(t *testing.T) {
	l, rec, c := newLog(t, refusals.Config{PerAddress: 3})
	for i := range 10 {
		l.Refused(refusals.MQTT, fmt.Sprintf("192.0.2.1:%d", 1000+i), "bob", "wrong user name or password")
	}
	l.Refused(refusals.WebSocket, "192.0.2.1:3000", "", "pages from https://evil.example may not use this hub")
	l.Refused(refusals.HTTP, "[2001:db8::1]:80", "", "credentials required")
	refused, summaries, _ := split(t, rec.lines())
	if len(refused) != 4 || len(summaries) != 0 {
		t.Fatalf("%d lines and %d summaries within the window, want 3+1 and 0: %+v", len(refused), len(summaries), rec.lines())
	}

	c.Add(time.Minute)
	l.Refused(refusals.MQTT, "192.0.2.1:2000", "bob", "wrong user name or password")
	lines := rec.lines()[4:]
	if len(lines) != 2 {
		t.Fatalf("%d lines after the window, want the summary and the refusal: %+v", len(lines), lines)
	}
	if lines[0].msg != "... and 8 more from 192.0.2.1 in the last minute" || lines[0].attrs["more"] != "8" ||
		lines[0].attrs["remote"] != "192.0.2.1" || lines[0].attrs["doors"] != "mqtt,websocket" {
		t.Errorf("summary %+v", lines[0])
	}
	if lines[1].msg != "refused" || lines[1].attrs["remote"] != "192.0.2.1:2000" {
		t.Errorf("after the summary: %+v", lines[1])
	}
}

// TestSummaryWhenTheWindowEnds: with no refusal after it, the summary comes
// when the window ends, by the Log's timer; Close stops it.
func TestSummaryWhenTheWindowEnds(t *testing.T) {
	rec := &recorder{}
	l := refusals.New(refusals.Config{Logger: slog.New(rec), Window: 50 * time.Millisecond, PerAddress: 2})
	defer l.Close()
	for range 5 {
		l.Refused(refusals.SSE, "192.0.2.1:1", "", "too many sessions from this address")
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, summaries, counted := split(t, rec.lines())
		return len(summaries) == 1 && counted == 3
	}, "no summary of 3 after the window: %+v", rec)
	if lines := rec.lines(); lines[2].msg != "... and 3 more from 192.0.2.1 in the last 50ms" {
		t.Errorf("summary %q", lines[2].msg)
	}
}

// TestCloseWritesWhatIsCounted: Close sums up the window under way.
func TestCloseWritesWhatIsCounted(t *testing.T) {
	rec := &recorder{}
	l := refusals.New(refusals.Config{Logger: slog.New(rec), PerAddress: 1})
	for range 4 {
		l.Refused(refusals.Login, "192.0.2.9:1", "carol", "wrong user name or password")
	}
	l.Close()
	if _, summaries, counted := split(t, rec.lines()); len(summaries) != 1 || counted != 3 {
		t.Fatalf("after Close: %d summaries counting %d, want 1 counting 3: %+v", len(summaries), counted, rec.lines())
	}
	l.Close() // twice is harmless
}

// TestFloodFromManyAddressesIsBounded: 2000 addresses, each refused twice,
// make at most MaxLines lines and MaxSummaries+1 summaries a window, and the
// summaries count every refusal not written.
func TestFloodFromManyAddressesIsBounded(t *testing.T) {
	const addresses, maxLines, maxSummaries = 2000, 100, 10
	l, rec, c := newLog(t, refusals.Config{MaxLines: maxLines, MaxSummaries: maxSummaries})
	for round := range 2 {
		for i := range addresses {
			l.Refused(refusals.MQTT, fmt.Sprintf("10.%d.%d.%d:1883", i>>16, i>>8&255, i&255), "", "quota exceeded")
		}
		if round == 0 {
			if _, summaries, _ := split(t, rec.lines()); len(summaries) != 0 {
				t.Fatalf("summaries within the window")
			}
		}
	}
	c.Add(time.Minute)
	l.Refused(refusals.MQTT, "192.0.2.1:1", "", "quota exceeded") // ends the window
	refused, summaries, counted := split(t, rec.lines())
	if len(refused) != maxLines+1 {
		t.Errorf("%d lines, want %d in the window and 1 after", len(refused), maxLines)
	}
	if len(summaries) != maxSummaries+1 {
		t.Errorf("%d summaries, want %d", len(summaries), maxSummaries+1)
	}
	if counted != 2*addresses-maxLines {
		t.Errorf("summaries count %d, want %d", counted, 2*addresses-maxLines)
	}
	if last := summaries[len(summaries)-1].msg; !strings.Contains(last, fmt.Sprintf("from %d other addresses", addresses-maxSummaries)) {
		t.Errorf("last summary %q", last)
	}
}

// TestAddressesAreBounded: a window counts at most MaxAddresses addresses
// one by one; the others are counted together, and nothing is lost.
func TestAddressesAreBounded(t *testing.T) {
	const maxAddresses = 100
	l, rec, c := newLog(t, refusals.Config{MaxAddresses: maxAddresses, PerAddress: 1, MaxLines: 1 << 20})
	for i := range 3 * maxAddresses {
		for range 2 {
			l.Refused(refusals.HTTP, fmt.Sprintf("198.51.%d.%d:80", i>>8, i&255), "", "credentials required")
		}
		if n := refusals.Addresses(l); n > maxAddresses {
			t.Fatalf("%d addresses counted, at most %d", n, maxAddresses)
		}
	}
	c.Add(time.Minute)
	l.Close()
	refused, summaries, counted := split(t, rec.lines())
	// One line for each address counted, and one for the others together.
	if len(refused) != maxAddresses+1 || len(refused)+counted != 6*maxAddresses {
		t.Errorf("%d lines and %d counted, want %d and %d", len(refused), counted, maxAddresses+1, 6*maxAddresses-maxAddresses-1)
	}
	if last := summaries[len(summaries)-1].msg; !strings.Contains(last, "from other addresses") {
		t.Errorf("last summary %q, want the other addresses'", last)
	}
	if n := refusals.Addresses(l); n != 0 {
		t.Errorf("%d addresses kept after the window", n)
	}
}

// TestConcurrentReports: reports from many goroutines, while windows end,
// lose nothing: every refusal is a line or counted in a summary.
func TestConcurrentReports(t *testing.T) {
	rec := &recorder{}
	l := refusals.New(refusals.Config{Logger: slog.New(rec), Window: 5 * time.Millisecond, PerAddress: 2, MaxSummaries: 1000})
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Refused(refusals.WebSocket, fmt.Sprintf("192.0.2.%d:%d", g, i), "", "origin")
			}
		})
	}
	wg.Wait()
	l.Close()
	refused, _, counted := split(t, rec.lines())
	if len(refused)+counted != goroutines*each {
		t.Fatalf("%d lines + %d counted, want %d", len(refused), counted, goroutines*each)
	}
}

// blockingSummaries is a slog.Handler that holds each summary line until
// released, as a slow log sink would.
type blockingSummaries struct {
	entered chan struct{} // a summary is being written
	release chan struct{}
	done    atomic.Bool // the summary's write has returned
}

func (b *blockingSummaries) Enabled(context.Context, slog.Level) bool { return true }
func (b *blockingSummaries) WithAttrs([]slog.Attr) slog.Handler       { return b }
func (b *blockingSummaries) WithGroup(string) slog.Handler            { return b }
func (b *blockingSummaries) Handle(_ context.Context, rec slog.Record) error {
	if summaryLine.MatchString(rec.Message) {
		b.entered <- struct{}{}
		<-b.release
		b.done.Store(true)
	}
	return nil
}

// TestCloseWaitsForTheTimersSummary: a summary that the window's timer is
// writing when Close is called is written before Close returns: after
// Close, the Log writes nothing from a goroutine of its own (the hub
// closes its log after it).
func TestCloseWaitsForTheTimersSummary(t *testing.T) {
	h := &blockingSummaries{entered: make(chan struct{}, 1), release: make(chan struct{})}
	l := refusals.New(refusals.Config{Logger: slog.New(h), Window: 20 * time.Millisecond, PerAddress: 1})
	l.Refused(refusals.MQTT, "192.0.2.1:1", "", "bad password")
	l.Refused(refusals.MQTT, "192.0.2.1:1", "", "bad password") // counted: the timer is armed
	select {
	case <-h.entered:
	case <-time.After(hubtest.Timeout):
		t.Fatal("the window's timer wrote no summary")
	}
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	select {
	case <-closed:
		t.Error("Close returned while the timer's summary was still being written")
	case <-time.After(200 * time.Millisecond): // Close waits, as it should
	}
	close(h.release)
	<-closed
	if !h.done.Load() {
		t.Error("the summary was written after Close returned")
	}
}
