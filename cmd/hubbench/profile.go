package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// profile is the top of a perf report of the hub under load.
type profile struct {
	Title    string         // the first comment lines perf writes, condensed
	Self     []profileEntry // by self time
	Children []profileEntry // by time including callees
}

type profileEntry struct {
	Percent float64
	Symbol  string
}

// perfLine matches a flat perf report line: "  12.34%  hub  [.] runtime.mallocgc"
// (the dso column is optional; with --children there are two percentages).
var perfLine = regexp.MustCompile(`^\s+([\d.]+)%\s+(?:([\d.]+)%\s+)?(.*)$`)

func readProfile(selfPath, childrenPath string) (profile, error) {
	var p profile
	f, err := os.Open(selfPath)
	if err != nil {
		return p, fmt.Errorf("profile: %w", err)
	}
	p.Self, p.Title = parsePerfReport(f, 25, false)
	_ = f.Close()
	if childrenPath != "" {
		if f, err := os.Open(childrenPath); err == nil {
			p.Children, _ = parsePerfReport(f, 25, true)
			_ = f.Close()
		}
	}
	if len(p.Self) == 0 {
		return p, fmt.Errorf("profile: no entries in %s", selfPath)
	}
	return p, nil
}

// parsePerfReport reads the first n entries of perf report --stdio output.
// With children, the first percentage is the one including callees.
func parsePerfReport(r io.Reader, n int, children bool) (entries []profileEntry, title string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && len(entries) < n {
		line := sc.Text()
		if strings.HasPrefix(line, "# Samples:") {
			title = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		m := perfLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		sym := strings.TrimSpace(m[3])
		if i := strings.Index(sym, "[.] "); i >= 0 {
			sym = strings.TrimSpace(sym[i+4:])
		} else if i := strings.Index(sym, "[k] "); i >= 0 {
			sym = "(kernel) " + strings.TrimSpace(sym[i+4:])
		}
		// perf pads the columns it was not asked for with "-".
		sym = strings.TrimSpace(strings.TrimRight(sym, " -"))
		if i := strings.Index(sym, "  "); i >= 0 {
			sym = sym[:i]
		}
		entries = append(entries, profileEntry{Percent: v, Symbol: sym})
	}
	return entries, title
}

func writeProfile(w io.Writer, p profile) {
	fmt.Fprintf(w, "## Where the time goes\n\n")
	if len(p.Self) == 0 {
		fmt.Fprintf(w, "No profile in this run.\n\n")
		return
	}
	fmt.Fprintf(w, "`perf record -g` of the hub process (pinned to one core) during the measured window of a motehub WS run with 1,000 subscribers (%s). Top entries by self time", p.Title)
	if len(p.Children) > 0 {
		fmt.Fprintf(w, ", and by time including callees")
	}
	fmt.Fprintf(w, ":\n\n| self %% | symbol |\n|---|---|\n")
	for _, e := range p.Self {
		fmt.Fprintf(w, "| %.2f | `%s` |\n", e.Percent, e.Symbol)
	}
	if len(p.Children) > 0 {
		fmt.Fprintf(w, "\n| with callees %% | symbol |\n|---|---|\n")
		for _, e := range p.Children {
			fmt.Fprintf(w, "| %.2f | `%s` |\n", e.Percent, e.Symbol)
		}
	}
	fmt.Fprintln(w)
}
