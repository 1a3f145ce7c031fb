package refusals

import (
	"context"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/motehub/motehub/internal/defaults"
	"github.com/motehub/motehub/internal/httpx"
)

// Door is the way in that refused a client, as its lines name it.
type Door string

// The hub's doors.
const (
	MQTT          Door = "mqtt"      // MQTT over TCP or TLS
	MQTTWebSocket Door = "mqtt-ws"   // MQTT over WebSocket (/mqtt)
	WebSocket     Door = "websocket" // Clown.Talk over WebSocket (/ws)
	SSE           Door = "sse"       // Server-Sent Events (/events)
	HTTP          Door = "http"      // the API, the dashboard, /metrics
	Login         Door = "login"     // the dashboard's login form
)

// Config tunes a Log. The zero value of each field means its documented
// default.
type Config struct {
	// Logger receives the lines, at WARN. Default: slog.Default().
	Logger *slog.Logger
	// Window is how long the bounds below count over. Default 1 minute.
	Window time.Duration
	// PerAddress is how many lines one client address gets in a window;
	// further refusals from it are counted and summarised. Default 5.
	PerAddress int
	// MaxLines bounds the lines of a window over all addresses (summaries
	// aside): past it every refusal is counted. Default 100.
	MaxLines int
	// MaxSummaries bounds the summary lines at the end of a window, one per
	// address, the addresses with the most first; one more line sums up the
	// others. Default 10.
	MaxSummaries int
	// MaxAddresses bounds the addresses counted one by one in a window;
	// refusals from more addresses are counted together. Default 10000.
	MaxAddresses int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	defaults.Set(&c.Window, time.Minute)
	defaults.Set(&c.PerAddress, 5)
	defaults.Set(&c.MaxLines, 100)
	defaults.Set(&c.MaxSummaries, 10)
	defaults.Set(&c.MaxAddresses, 10000)
}

// The longest user name, reason and address a line carries, in bytes: all
// three come from clients (an MQTT user name may be 64 KiB), and a line
// stays a line.
const (
	maxUser   = 64
	maxReason = 256
	maxRemote = 64
)

// Log writes the refusals of every door, bounded. See the package's doc.
type Log struct {
	cfg Config
	now func() time.Time // time.Now; tests set another

	mu     sync.Mutex
	end    time.Time         // when the current window ends; zero before the first report
	lines  int               // lines written in the current window
	byAddr map[string]*tally // the current window's addresses; at most Config.MaxAddresses
	others tally             // the addresses past Config.MaxAddresses
	timer  *time.Timer       // armed while counted refusals wait for their summary
	closed bool

	// ticking counts the timer's runs of tick armed and not yet over, so
	// that Close waits for a summary being written.
	ticking sync.WaitGroup
}

// tally is what one address (or the others) did in the current window.
type tally struct {
	logged int   // lines written
	more   int   // refusals counted, not written
	doors  doors // the doors of those counted
}

// New returns a Log writing to cfg.Logger.
func New(cfg Config) *Log {
	cfg.setDefaults()
	return &Log{cfg: cfg, now: time.Now, byAddr: make(map[string]*tally)}
}

// Refused reports a client refused at door: remote is its address
// ("host:port", as net/http and net.Addr give it), user the name it claimed
// or was known by ("" for none), reason why, for the person reading the
// log. attrs add details (a reason code, an HTTP status); none may carry a
// secret.
func (l *Log) Refused(door Door, remote, user, reason string, attrs ...slog.Attr) {
	l.report("refused", door, remote, user, reason, attrs)
}

// CutOff reports a client the hub disconnected for what it did (too slow to
// read its messages, sending too fast), counted and bounded as refusals are.
func (l *Log) CutOff(door Door, remote, user, reason string, attrs ...slog.Attr) {
	l.report("cut off", door, remote, user, reason, attrs)
}

func (l *Log) report(msg string, door Door, remote, user, reason string, attrs []slog.Attr) {
	remote = truncate(remote, maxRemote)
	addr := httpx.Host(remote)
	l.mu.Lock()
	summaries := l.rollLocked(l.now(), false)
	t := l.tallyLocked(addr)
	write := t.logged < l.cfg.PerAddress && l.lines < l.cfg.MaxLines
	if write {
		t.logged++
		l.lines++
	} else {
		t.more++
		t.doors = t.doors.add(door)
		l.armLocked()
	}
	l.mu.Unlock()

	l.write(summaries)
	if !write {
		return
	}
	line := make([]slog.Attr, 0, 4+len(attrs))
	line = append(line, slog.String("door", string(door)), slog.String("remote", remote))
	if user != "" {
		line = append(line, slog.String("user", truncate(user, maxUser)))
	}
	line = append(line, slog.String("reason", truncate(reason, maxReason)))
	line = append(line, attrs...)
	l.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, msg, line...)
}

// tallyLocked is addr's tally in the current window, or the others' when
// the window counts as many addresses as it may.
func (l *Log) tallyLocked(addr string) *tally {
	if t, ok := l.byAddr[addr]; ok {
		return t
	}
	if len(l.byAddr) >= l.cfg.MaxAddresses {
		return &l.others
	}
	t := &tally{}
	l.byAddr[addr] = t
	return t
}

// armLocked makes sure the counted refusals get their summary when the
// window ends, even if no refusal comes then.
func (l *Log) armLocked() {
	if l.timer != nil || l.closed {
		return
	}
	l.ticking.Add(1)
	l.timer = time.AfterFunc(l.end.Sub(l.now()), l.tick)
}

// tick writes the summaries of a window that has ended.
func (l *Log) tick() {
	defer l.ticking.Done()
	l.mu.Lock()
	l.timer = nil
	if l.closed {
		l.mu.Unlock()
		return
	}
	summaries := l.rollLocked(l.now(), false)
	if summaries == nil && l.pendingLocked() {
		l.armLocked() // woken early (tests move the clock)
	}
	l.mu.Unlock()
	l.write(summaries)
}

// Close stops the timer, waits for a summary it is writing, and writes the
// summaries of what is counted: once it returns, the Log writes nothing
// from a goroutine of its own. Later reports are still written, within the
// bounds, but what they count is not summarised.
func (l *Log) Close() {
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		if l.timer.Stop() { // tick will not run
			l.ticking.Done()
		}
		l.timer = nil
	}
	summaries := l.rollLocked(l.now(), true)
	l.mu.Unlock()
	l.ticking.Wait()
	l.write(summaries)
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
