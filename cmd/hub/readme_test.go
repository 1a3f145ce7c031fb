package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestReadmeCommands runs the commands of README.md, so that the README
// cannot drift from the hub. Every ```sh block (or bash, shell) runs, line by
// line, in a working directory of its own, against a hub of its own: the
// one the block starts (`go run ./cmd/hub FLAGS` or `hub FLAGS`, run from
// the binary built once), else a hub with the defaults. Each command must
// exit 0. A block that cannot run offline (it needs the network or root,
// runs the tests, or talks to machines that are not there) says so in its
// info string, ```sh untested, and is only shown to people.
//
// What the test changes, so that commands meant for a person's machine run
// here: the hub listens on 127.0.0.1:0 (its --http, --mqtt and --mqtts
// become that, and are added when missing), and every 127.0.0.1:8080 or
// localhost:8080 of a curl line, and the MQTT port of a mosquitto_pub or
// mosquitto_sub line, become the hub's real ones. curl runs with --fail-with-body, so
// an HTTP error fails. `hub passwd` reads the password from standard input
// (--password-stdin): the password the block's other lines give for that
// user (curl -u NAME:PASSWORD, mosquitto -u NAME -P PASSWORD,
// scheme://NAME:PASSWORD@), or a fixed one. A mosquitto_sub that would run
// until stopped (no -C, -W or -E) runs in the background from its line on,
// once it has subscribed, and is stopped with SIGTERM when the block ends,
// as is the block's hub; both must then exit 0.
//
// The commands are simple commands: a program, its arguments (quoted as sh
// quotes them) and NAME=value assignments before it; pipes, redirections
// and substitutions fail the test, as does a program it does not know.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the README's commands")
	}
	blocks, err := readReadmeBlocks(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildHub(t)
	ran, untested := 0, 0
	for _, b := range blocks {
		if !b.shell() {
			continue
		}
		if b.untested() {
			untested++
			continue
		}
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			r := &readmeRun{t: t, bin: bin, dir: t.TempDir()}
			r.run(b)
			ran += r.ran
		})
	}
	t.Logf("%s: ran %d commands; %d blocks marked untested", readmePath, ran, untested)
	if ran == 0 && !t.Failed() && !t.Skipped() {
		t.Fatalf("%s: no command ran: its ```sh blocks are gone, or all marked untested", readmePath)
	}
}

// readmePath is the README, from this package's directory.
const readmePath = "../../README.md"

// readmeCommandTimeout bounds one command: a curl, a mosquitto_pub, a
// mosquitto_sub -C N waiting for its messages, a hub getting ready.
const readmeCommandTimeout = 30 * time.Second

// readmeDefaultPassword is the password of a user whose password the block
// does not give.
const readmeDefaultPassword = "readme-test-password"

// readmeBlock is a fenced code block of the README.
type readmeBlock struct {
	line  int      // of the opening fence
	info  []string // the info string's words: the language, then "untested" or not
	lines []readmeLine
}

type readmeLine struct {
	n    int
	text string
}

// shell reports whether the block holds shell commands.
func (b readmeBlock) shell() bool {
	return len(b.info) > 0 && slices.Contains([]string{"sh", "bash", "shell"}, b.info[0])
}

// untested reports whether the block is marked as not runnable offline.
func (b readmeBlock) untested() bool { return slices.Contains(b.info, "untested") }

// readReadmeBlocks returns the fenced code blocks of a Markdown file.
func readReadmeBlocks(path string) ([]readmeBlock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		blocks []readmeBlock
		open   *readmeBlock
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence, isFence := strings.CutPrefix(strings.TrimSpace(line), "```")
		switch {
		case isFence && open == nil:
			open = &readmeBlock{line: n, info: strings.Fields(fence)}
		case isFence:
			blocks = append(blocks, *open)
			open = nil
		case open != nil:
			open.lines = append(open.lines, readmeLine{n, line})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if open != nil {
		return nil, fmt.Errorf("%s:%d: a code block that never ends", path, open.line)
	}
	return blocks, nil
}

// readmeCommand is one command of a block.
type readmeCommand struct {
	line int      // in the README
	text string   // as written there
	env  []string // NAME=value before the program
	args []string // the program and its arguments
}

func (c readmeCommand) String() string { return fmt.Sprintf("%s:%d: `%s`", readmePath, c.line, c.text) }

// hubArgs are the hub's arguments when c runs the hub (`go run ./cmd/hub`
// or `hub`).
func (c readmeCommand) hubArgs() ([]string, bool) {
	switch {
	case len(c.args) >= 3 && c.args[0] == "go" && c.args[1] == "run" && c.args[2] == "./cmd/hub":
		return c.args[3:], true
	case c.args[0] == "hub":
		return c.args[1:], true
	}
	return nil, false
}

// parseCommands splits a block into commands: comments dropped, lines
// ending in "\" joined.
func parseCommands(b readmeBlock) ([]readmeCommand, error) {
	var (
		cmds    []readmeCommand
		pending string
		start   int
	)
	for _, l := range b.lines {
		if pending == "" {
			start = l.n
		}
		text := strings.TrimSpace(l.text)
		if more, ok := strings.CutSuffix(text, `\`); ok {
			pending += more + " "
			continue
		}
		text, pending = pending+text, ""
		words, err := shellWords(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w; mark the block ```sh untested if it cannot run here", readmePath, start, err)
		}
		if len(words) == 0 {
			continue
		}
		c := readmeCommand{line: start, text: strings.TrimSpace(text)}
		for len(words) > 0 && isAssignment(words[0]) {
			c.env, words = append(c.env, words[0]), words[1:]
		}
		if len(words) == 0 {
			return nil, fmt.Errorf("%s: assignments without a command", c)
		}
		c.args = words
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// isAssignment reports whether word is NAME=value.
func isAssignment(word string) bool {
	name, _, ok := strings.Cut(word, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// shellWords splits a simple command as sh does: words apart at blanks,
// 'single' and "double" quotes, backslash escapes, a # at the start of a
// word begins a comment. Anything more (pipes, redirections, variables,
// substitutions, several commands) is an error.
func shellWords(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t':
			if inWord {
				words, inWord = append(words, word.String()), false
				word.Reset()
			}
		case ch == '#' && !inWord:
			return words, nil
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("a ' that is never closed")
			}
			word.WriteString(s[i+1 : i+1+end])
			i, inWord = i+1+end, true
		case ch == '"':
			inWord = true
			for i++; ; i++ {
				if i == len(s) {
					return nil, errors.New(`a " that is never closed`)
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '$' || s[i] == '`' {
					return nil, fmt.Errorf("%q inside double quotes: this test runs no shell", s[i])
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
		case ch == '\\' && i+1 < len(s):
			i++
			word.WriteByte(s[i])
			inWord = true
		case strings.IndexByte("|&;<>()$`", ch) >= 0:
			return nil, fmt.Errorf("%q: this test runs simple commands, no shell", ch)
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// readmeRun runs one block.
type readmeRun struct {
	t        *testing.T
	bin, dir string
	cmds     []readmeCommand
	hub      *readmeHub // the block's hub, once it runs
	ran      int        // commands that ran and exited 0
}

// readmeHub is a hub process the test started, with its real addresses.
type readmeHub struct {
	http, mqtt string
}

// background is a process that runs until the block ends.
type background struct {
	out    *hubtest.LogBuffer
	exited <-chan error

	ended  bool // exited has yielded endErr
	endErr error
}

// wait waits up to timeout (0: not at all) for the process to exit, and
// says whether it has, and how.
func (bg *background) wait(timeout time.Duration) (ended bool, err error) {
	if !bg.ended {
		select {
		case bg.endErr = <-bg.exited:
			bg.ended = true
		default:
			if timeout > 0 {
				select {
				case bg.endErr = <-bg.exited:
					bg.ended = true
				case <-time.After(timeout):
				}
			}
		}
	}
	return bg.ended, bg.endErr
}

// startBackground starts proc for c, to run until the block ends: then it
// is stopped with SIGTERM (before the process's own cleanup kills it), and
// must exit 0. ready tells from its output that it is up: startBackground
// waits for that, and fails the test if it exits first.
func (r *readmeRun) startBackground(c readmeCommand, what string, proc *exec.Cmd, ready func(out string) bool) *background {
	t := r.t
	t.Helper()
	out, exited := hubtest.StartCommand(t, proc)
	bg := &background{out: out, exited: exited}
	t.Cleanup(func() {
		if ended, err := bg.wait(0); ended {
			if t.Failed() {
				return // said already, or the block failed for another reason
			}
			t.Errorf("%s: %s ended before the block did: %v\n%s", c, what, err, out)
			return
		}
		_ = proc.Process.Signal(syscall.SIGTERM)
		ended, err := bg.wait(readmeCommandTimeout)
		switch {
		case !ended && what != "the hub":
			// A tool of Mosquitto's, not ours, once hung after SIGTERM on a
			// loaded machine: what the README says of it held until then.
			_ = proc.Process.Kill()
			t.Logf("%s: %s still ran %v after SIGTERM: killed\n%s", c, what, readmeCommandTimeout, out)
		case !ended:
			t.Errorf("%s: %s still runs %v after SIGTERM\n%s", c, what, readmeCommandTimeout, out)
		case err != nil:
			t.Errorf("%s: %s exited with %v after SIGTERM\n%s", c, what, err, out)
		}
	})
	hubtest.Eventually(t, readmeCommandTimeout, func() bool {
		if ended, err := bg.wait(0); ended {
			t.Fatalf("%s: %s exited (%v) before it was up; run as %q:\n%s", c, what, err, proc.Args, out)
		}
		return ready(out.String())
	}, "%s: %s not up; run as %q:\n%s", c, what, proc.Args, out)
	t.Logf("%s: %s up (run as %q)", c, what, proc.Args)
	return bg
}

func (r *readmeRun) run(b readmeBlock) {
	t := r.t
	cmds, err := parseCommands(b)
	if err != nil {
		t.Fatal(err)
	}
	r.cmds = cmds
	serverAt := slices.IndexFunc(cmds, isHubServer)
	for i, c := range cmds {
		switch args, isHub := c.hubArgs(); {
		case isHub && isHubServer(c):
			if r.hub != nil {
				t.Fatalf("%s: a second hub in one block", c)
			}
			r.hub = r.startHub(c, args)
		case isHub:
			r.foreground(c, r.bin, r.hubSubcommand(c, args))
		case c.args[0] == "curl", c.args[0] == "mosquitto_pub", c.args[0] == "mosquitto_sub":
			if serverAt > i {
				t.Fatalf("%s talks to a hub before the block starts one (%s)", c, cmds[serverAt])
			}
			if r.hub == nil {
				r.hub = r.startHub(readmeCommand{line: c.line, text: "(a hub with the defaults, for the block)"}, nil)
			}
			r.client(c)
		default:
			t.Fatalf("%s: %q is not a command this test runs offline: mark the block ```sh untested, or teach readme_test.go", c, c.args[0])
		}
	}
}

// isHubServer reports whether c runs the hub itself, not one of its
// subcommands.
func isHubServer(c readmeCommand) bool {
	args, isHub := c.hubArgs()
	return isHub && (len(args) == 0 || strings.HasPrefix(args[0], "-"))
}

// hubSubcommand is the arguments of a `hub passwd` (or other subcommand)
// line as the test runs it: passwd reads the password from standard input.
func (r *readmeRun) hubSubcommand(c readmeCommand, args []string) []string {
	if args[0] != "passwd" || slices.Contains(args, "--password-stdin") || slices.Contains(args, "--no-password") ||
		slices.Contains(args, "--delete") || flagValue(args, "user") == "anonymous" {
		return args
	}
	return append(slices.Clone(args), "--password-stdin")
}

// password is what the block's lines give as user's password.
func (r *readmeRun) password(user string) string {
	for _, c := range r.cmds {
		a := c.args
		for i, arg := range a {
			switch {
			case c.args[0] == "curl" && (arg == "-u" || arg == "--user") && i+1 < len(a):
				if name, pw, ok := strings.Cut(a[i+1], ":"); ok && name == user {
					return pw
				}
			case strings.HasPrefix(c.args[0], "mosquitto_") && (arg == "-u" || arg == "--username") && i+1 < len(a) && a[i+1] == user:
				if pw := flagValue(a, "P"); pw != "" {
					return pw
				}
			}
			if u, err := url.Parse(arg); err == nil && u.User != nil && u.User.Username() == user {
				if pw, ok := u.User.Password(); ok {
					return pw
				}
			}
		}
	}
	return readmeDefaultPassword
}

// flagValue is the value of the flag name (-name, --name, --name=value) in
// args, or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "-"+name || a == "--"+name {
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		for _, p := range []string{"-" + name + "=", "--" + name + "="} {
			if v, ok := strings.CutPrefix(a, p); ok {
				return v
			}
		}
	}
	return ""
}

// loopbackListeners rewrites the hub's listener flags to 127.0.0.1:0 (one
// turned off, "", stays off), adding --http, and --mqtt unless the hub uses
// an --upstream broker, when missing.
func loopbackListeners(args []string) []string {
	out := make([]string, 0, len(args)+4)
	seen := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !slices.Contains([]string{"http", "mqtt", "mqtts"}, name) {
			out = append(out, a)
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		seen[name] = true
		if value != "" {
			value = "127.0.0.1:0"
		}
		out = append(out, "--"+name, value)
	}
	for _, name := range []string{"http", "mqtt"} {
		if !seen[name] && (name == "http" || !slices.Contains(args, "--upstream")) {
			out = append(out, "--"+name, "127.0.0.1:0")
		}
	}
	return out
}

// startHub starts the hub of c and waits until it is ready.
func (r *readmeRun) startHub(c readmeCommand, args []string) *readmeHub {
	r.t.Helper()
	proc := exec.Command(r.bin, loopbackListeners(args)...)
	proc.Dir, proc.Env = r.dir, append(os.Environ(), c.env...)
	bg := r.startBackground(c, "the hub", proc, readyLine.MatchString)
	h := &readmeHub{}
	for _, m := range listeningLine.FindAllStringSubmatch(bg.out.String(), -1) {
		switch proto, addr := m[1]+m[3], m[2]+m[4]; proto {
		case "http", "https":
			h.http = addr
		case "mqtt":
			h.mqtt = addr
		}
	}
	if c.args != nil {
		r.ran++
	}
	return h
}

// client runs a curl, mosquitto_pub or mosquitto_sub line against the
// block's hub.
func (r *readmeRun) client(c readmeCommand) {
	t := r.t
	t.Helper()
	switch c.args[0] {
	case "curl":
		hubtest.RequireCommand(t, "curl", "curl")
		args := []string{"-sS", "--fail-with-body", "--max-time", fmt.Sprint(readmeCommandTimeout.Seconds())}
		for _, a := range c.args[1:] {
			for _, local := range []string{"127.0.0.1:8080", "localhost:8080"} {
				a = strings.ReplaceAll(a, local, r.hub.http)
			}
			args = append(args, a)
		}
		r.foreground(c, "curl", args)
	default:
		prog := hubtest.RequireCommand(t, c.args[0], "mosquitto-clients")
		if r.hub.mqtt == "" {
			t.Fatalf("%s: the block's hub has no MQTT listener", c)
		}
		_, port, _ := net.SplitHostPort(r.hub.mqtt)
		var args []string
		for i := 1; i < len(c.args); i++ {
			if c.args[i] == "-p" || c.args[i] == "--port" {
				i++ // the hub's port instead
				continue
			}
			args = append(args, c.args[i])
		}
		args = append(args, "-p", port)
		if c.args[0] == "mosquitto_sub" && flagValue(c.args, "C") == "" && flagValue(c.args, "W") == "" && !slices.Contains(c.args, "-E") {
			r.subscriber(c, prog, args)
			return
		}
		r.foreground(c, prog, args)
	}
}

// subscriber starts a mosquitto_sub that runs until stopped, and waits
// until it has subscribed (-d prints the SUBACK; stdbuf makes its output
// reach the test as it is written).
func (r *readmeRun) subscriber(c readmeCommand, prog string, args []string) {
	r.t.Helper()
	stdbuf := hubtest.RequireCommand(r.t, "stdbuf", "coreutils")
	proc := exec.Command(stdbuf, append([]string{"-oL", prog, "-d"}, args...)...)
	proc.Dir, proc.Env = r.dir, append(os.Environ(), c.env...)
	r.startBackground(c, "mosquitto_sub", proc, func(out string) bool { return strings.Contains(out, "received SUBACK") })
	r.ran++
}

// foreground runs prog with args for c in the block's directory and needs
// exit status 0. A `hub passwd` gets its user's password on standard input.
func (r *readmeRun) foreground(c readmeCommand, prog string, args []string) {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), readmeCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir, cmd.Env = r.dir, append(os.Environ(), c.env...)
	if slices.Contains(args, "--password-stdin") {
		cmd.Stdin = strings.NewReader(r.password(flagValue(args, "user")) + "\n")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		why := err.Error()
		if ctx.Err() != nil {
			why = fmt.Sprintf("still running after %v", readmeCommandTimeout)
		}
		t.Fatalf("%s failed: %s; run as %q in %s:\n%s", c, why, cmd.Args, r.dir, out)
	}
	t.Logf("%s: exit 0", c)
	r.ran++
}
