package refusals

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// summary is a line that sums up the refusals counted, not written, in a
// window.
type summary struct {
	msg   string
	attrs []slog.Attr
}

// rollLocked ends the current window when it is over at now (or, with
// force, whenever), starts the next and returns the summaries of the one
// that ended; nil when nothing was counted.
func (l *Log) rollLocked(now time.Time, force bool) []summary {
	if !force && now.Before(l.end) {
		return nil
	}
	var counted []addrMore
	for addr, t := range l.byAddr {
		if t.more > 0 {
			counted = append(counted, addrMore{addr, *t})
		}
	}
	others := l.others
	clear(l.byAddr)
	l.others, l.lines, l.end = tally{}, 0, now.Add(l.cfg.Window)
	return summarise(counted, others, l.window(), l.cfg.MaxSummaries)
}

// pendingLocked reports whether refusals wait for their summary.
func (l *Log) pendingLocked() bool {
	if l.others.more > 0 {
		return true
	}
	for _, t := range l.byAddr {
		if t.more > 0 {
			return true
		}
	}
	return false
}

type addrMore struct {
	addr string
	tally
}

// summarise writes one line for each of the max addresses that counted the
// most, and one for the rest together (others: counted from addresses past
// Config.MaxAddresses).
func summarise(counted []addrMore, others tally, window string, max int) []summary {
	if len(counted) == 0 && others.more == 0 {
		return nil
	}
	slices.SortFunc(counted, func(a, b addrMore) int {
		return cmp.Or(cmp.Compare(b.more, a.more), cmp.Compare(a.addr, b.addr))
	})
	var out []summary
	for _, c := range counted[:min(max, len(counted))] {
		out = append(out, summary{
			msg: fmt.Sprintf("... and %d more from %s in the last %s", c.more, c.addr, window),
			attrs: []slog.Attr{slog.String("remote", c.addr), slog.Int("more", c.more),
				slog.String("doors", c.doors.String())},
		})
	}
	rest, addrs := others, len(counted)-min(max, len(counted))
	for _, c := range counted[min(max, len(counted)):] {
		rest.more += c.more
		rest.doors |= c.doors
	}
	if rest.more > 0 {
		where := fmt.Sprintf("%d other addresses", addrs)
		if others.more > 0 {
			where = "other addresses"
		}
		out = append(out, summary{
			msg:   fmt.Sprintf("... and %d more from %s in the last %s", rest.more, where, window),
			attrs: []slog.Attr{slog.Int("more", rest.more), slog.String("doors", rest.doors.String())},
		})
	}
	return out
}

// doors is a set of doors, for a summary to say where its refusals came.
type doors uint8

// allDoors are the doors a set may hold, in the order a summary names them.
var allDoors = []Door{MQTT, MQTTWebSocket, WebSocket, SSE, HTTP, Login}

func (s doors) add(d Door) doors {
	if i := slices.Index(allDoors, d); i >= 0 {
		return s | 1<<i
	}
	return s
}

func (s doors) String() string {
	var names []string
	for i, d := range allDoors {
		if s&(1<<i) != 0 {
			names = append(names, string(d))
		}
	}
	return strings.Join(names, ",")
}

// window names Config.Window in a summary: "minute", or a duration.
func (l *Log) window() string {
	if l.cfg.Window == time.Minute {
		return "minute"
	}
	return l.cfg.Window.String()
}

func (l *Log) write(summaries []summary) {
	for _, s := range summaries {
		l.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, s.msg, s.attrs...)
	}
}
