package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// profile is the top of the perf reports bench/run.sh writes for the hub
// under load (perf report --stdio -g none):
//
//	profile-self.txt      --no-children --sort symbol
//	profile-children.txt  --children --sort symbol
//	profile-dso.txt       --no-children --sort dso
//	profile-user.txt      --no-children --sort symbol --dsos hub
type profile struct {
	Title    string         // perf's "Samples: ..." line
	Self     []profileEntry // by self time
	Children []profileEntry // by time including callees
	DSO      []profileEntry // by binary: the kernel, the hub, the vDSO
	User     []profileEntry // the hub's own code, by self time (shares of the whole)
}

type profileEntry struct {
	Percent float64
	Symbol  string
}

// perfLine matches a flat perf report line: "  12.34%  [.] runtime.mallocgc"
// (with --children there are two percentages, the first including callees).
var perfLine = regexp.MustCompile(`^\s+([\d.]+)%\s+(?:([\d.]+)%\s+)?(.*)$`)

func readProfile(dir string) (profile, error) {
	var p profile
	read := func(name string, n int) []profileEntry {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil
		}
		defer f.Close()
		entries, title := parsePerfReport(f, n)
		if p.Title == "" {
			p.Title = title
		}
		return entries
	}
	p.Self = read("profile-self.txt", 20)
	p.Children = read("profile-children.txt", 30)
	p.DSO = read("profile-dso.txt", 6)
	p.User = read("profile-user.txt", 20)
	if len(p.Self) == 0 {
		return p, fmt.Errorf("profile: no entries in %s", filepath.Join(dir, "profile-self.txt"))
	}
	return p, nil
}

// parsePerfReport reads the first n entries of perf report --stdio output.
func parsePerfReport(r io.Reader, n int) (entries []profileEntry, title string) {
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
		fmt.Fprintf(w, "No profile in these results.\n\n")
		return
	}
	fmt.Fprintf(w, "`perf record -e cpu-clock -g` of the hub process (pinned to CPU 0) during the measured window of a motehub WS run with 1,000 subscribers at 100 msg/s (100k deliveries/s offered); %s. Shares are of all the hub's samples.\n\n", p.Title)
	table := func(title string, entries []profileEntry) {
		if len(entries) == 0 {
			return
		}
		fmt.Fprintf(w, "| %s %% | |\n|---|---|\n", title)
		for _, e := range entries {
			fmt.Fprintf(w, "| %.2f | `%s` |\n", e.Percent, e.Symbol)
		}
		fmt.Fprintln(w)
	}
	table("by binary", p.DSO)
	table("with callees", p.Children)
	table("self, the hub's own code", p.User)
	table("self, everything", p.Self)
}
