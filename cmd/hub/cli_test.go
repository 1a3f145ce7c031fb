package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestCommandLine runs the hub binary as people do: help and version exit
// 0 on stdout, a usage mistake exits 2 with one line on stderr in the
// double-dash words of hub --help, another failure exits 1; nothing a
// person reads carries a package prefix.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHub(t)
	hub := func(t *testing.T, stdin string, env []string, args ...string) hubtest.CommandResult {
		t.Helper()
		return hubtest.RunCommand(t, bin, stdin, env, args...)
	}

	t.Run("version", func(t *testing.T) {
		want := hub(t, "", nil, "version")
		if want.Exit != 0 || !regexp.MustCompile(`^motehub \S+.* go1\.\S+ \w+/\w+\n$`).MatchString(want.Stdout) || want.Stderr != "" {
			t.Fatalf("hub version: %+v", want)
		}
		for _, args := range [][]string{{"--version"}, {"-v"}, {"-version"}, {"--http", "127.0.0.1:0", "--version"}} {
			if got := hub(t, "", nil, args...); got != want {
				t.Errorf("hub %v: %+v, want what hub version prints: %+v", args, got, want)
			}
		}
		if got := hub(t, "", nil, "version", "x"); got.Exit != 2 || got.Stderr != "hub version: unexpected argument \"x\": hub version takes none\n" {
			t.Errorf("hub version x: %+v", got)
		}
	})

	t.Run("help", func(t *testing.T) {
		help := hub(t, "", nil, "--help")
		if help.Exit != 0 || help.Stderr != "" {
			t.Fatalf("hub --help: %+v", help)
		}
		for _, want := range []string{
			"Usage: hub [flags]\n       hub COMMAND [flags]\n",
			"\nCommands:\n" +
				"  passwd   add, change or remove a user of a users file (--users)\n" +
				"  store    check a stopped hub's --data, or drop its damaged history: hub store check|drop-history DIR\n" +
				"  version  print the version, commit, Go version and platform (also --version, -v)\n" +
				"  help     show this help, or a command's: hub help passwd\n",
			"\nListeners:\n  --http ADDR\n", "\nSecurity:\n", "\nDevice commands:\n  --ack-timeout DURATION\n", "[HUB_HTTP]",
		} {
			if !strings.Contains(help.Stdout, want) {
				t.Errorf("hub --help lacks %q:\n%s", want, help.Stdout)
			}
		}
		if regexp.MustCompile(`(?m)^  --(version|v)\b`).MatchString(help.Stdout) || strings.Contains(help.Stdout, "HUB_VERSION") {
			t.Errorf("hub --help lists --version as a flag with an environment twin:\n%s", help.Stdout)
		}
		for _, args := range [][]string{{"help"}, {"-h"}, {"-help"}, {"help", "--help"}} {
			if got := hub(t, "", nil, args...); got != help {
				t.Errorf("hub %v differs from hub --help: %+v", args, got)
			}
		}

		passwd := hub(t, "", nil, "help", "passwd")
		if passwd.Exit != 0 || !strings.HasPrefix(passwd.Stdout, "Usage: hub passwd --users FILE --user NAME [flags]\n") {
			t.Fatalf("hub help passwd: %+v", passwd)
		}
		for _, want := range []string{"\n  --users FILE\n      the users FILE\n", "\n  --read FILTER\n", "\n  --admin\n      let the user open the admin view"} {
			if !strings.Contains(passwd.Stdout, want) {
				t.Errorf("hub help passwd lacks %q:\n%s", want, passwd.Stdout)
			}
		}
		if regexp.MustCompile(`(?m)^\s+-\w`).MatchString(passwd.Stdout) {
			t.Errorf("hub help passwd names a flag with one dash:\n%s", passwd.Stdout)
		}
		if got := hub(t, "", nil, "passwd", "--help"); got != passwd {
			t.Errorf("hub passwd --help differs from hub help passwd: %+v", got)
		}
		for _, name := range []string{"store", "version", "help"} {
			if got := hub(t, "", nil, "help", name); got.Exit != 0 || !strings.HasPrefix(got.Stdout, "Usage: hub "+name) {
				t.Errorf("hub help %s: %+v", name, got)
			}
		}
		if got := hub(t, "", nil, "store", "--help"); got.Exit != 0 || !strings.HasPrefix(got.Stdout, "Usage: hub store check DIR\n") {
			t.Errorf("hub store --help: %+v", got)
		}
	})

	t.Run("usage mistakes", func(t *testing.T) {
		for _, c := range []struct {
			env    []string
			args   []string
			stderr string
		}{
			{nil, []string{"--http", "8080"}, "hub: --http 8080: want host:port (for example 127.0.0.1:8080)\n"},
			{nil, []string{"--http", "9000"}, "hub: --http 9000: want host:port (for example 127.0.0.1:9000)\n"},
			{nil, []string{"--http", "http://127.0.0.1:8080/"}, "hub: --http http://127.0.0.1:8080/: want host:port (for example 127.0.0.1:8080)\n"},
			{nil, []string{"--mqtt", "nonsense"}, "hub: --mqtt nonsense: want host:port (for example 127.0.0.1:1883), or \"\" for none\n"},
			{nil, []string{"--mqtts", "8883"}, "hub: --mqtts 8883: want host:port (for example 127.0.0.1:8883), or \"\" for none\n"},
			{[]string{"HUB_HTTP=8080"}, nil, "hub: HUB_HTTP=\"8080\": want host:port (for example 127.0.0.1:8080)\n"},
			{nil, []string{"--htp", "127.0.0.1:0"}, "hub: unknown flag --htp (see hub --help)\n"},
			{nil, []string{"--http"}, "hub: --http needs a value (see hub --help)\n"},
			{nil, []string{"--rate-limit", "fast"}, "hub: --rate-limit fast: want a number\n"},
			{nil, []string{"--max-connections", "many"}, "hub: --max-connections many: want a whole number\n"},
			{nil, []string{"--idle-timeout", "soon"}, "hub: --idle-timeout soon: want a duration such as 500ms, 5s or 2m\n"},
			{nil, []string{"--demo=maybe"}, "hub: --demo=maybe: want true or false\n"},
			{nil, []string{"--log-format", "xml"}, "hub: --log-format xml: want text or json\n"},
			{nil, []string{"--allow-host", "a b"}, "hub: --allow-host \"a b\": want a host name or an IP address, such as hub.lan\n"},
			{nil, []string{"serve"}, "hub: unknown command \"serve\": the commands are passwd, store, version and help (see hub --help)\n"},
			{nil, []string{"--demo", "extra"}, "hub: unexpected argument \"extra\" (see hub --help)\n"},
			{nil, []string{"--demo", "--demo-motes", "500"}, "hub: --demo-motes 500: the demo's 504 MQTT clients all connect from the hub's own address, " +
				"more than --max-connections-per-address 256 or --max-connections 10000 let in; raise them to at least 504\n"},
			{nil, []string{"help", "serve"}, "hub help: unknown command \"serve\": the commands are passwd, store, version and help\n"},
			{nil, []string{"--upstream", "gopher://hub:s3cret@broker"}, "hub: --upstream: bad upstream URL: scheme \"gopher\" (want mqtt, mqtts, ws, wss, mqtt5 or mqtt5s)\n"},
			{[]string{"HUB_UPSTREAM=gopher://hub:s3cret@broker"}, nil, "hub: HUB_UPSTREAM: bad upstream URL: scheme \"gopher\" (want mqtt, mqtts, ws, wss, mqtt5 or mqtt5s)\n"},
			{nil, []string{"--upstream", "mqtt://hub:s3cret#1@broker"}, "hub: --upstream: bad upstream URL: its user:password@ does not parse: " +
				"a password with /, ?, #, @, % or a space in it must be percent-encoded (# is %23), or given apart from the URL\n"},
			{[]string{"HUB_UPSTREAM=wss://hub:s3cret/1@broker"}, nil, "hub: HUB_UPSTREAM: bad upstream URL: its user:password@ does not parse: " +
				"a password with /, ?, #, @, % or a space in it must be percent-encoded (# is %23), or given apart from the URL\n"},
			{nil, []string{"--http", "0.0.0.0:0"}, "hub: --http 0.0.0.0:0 is not a loopback address: anyone who can reach it could read and command every device. " +
				"Give users with --users (see hub passwd), listen on 127.0.0.1, or pass --allow-anonymous to accept that\n"},
			{nil, []string{"passwd", "--users", "u.toml", "--user", "bob", "--read", "a/#/b"}, "hub passwd: --read a/#/b: '+' and '#' must fill a whole level, and '#' must be last\n"},
			{nil, []string{"passwd", "--users", "u.toml", "--user", "bob", "--write", "a/+b"}, "hub passwd: --write a/+b: '+' and '#' must fill a whole level, and '#' must be last\n"},
			{nil, []string{"passwd", "--users", "u.toml"}, "hub passwd: --users and --user are required (see hub passwd --help)\n"},
			{nil, []string{"passwd", "--users", "u.toml", "--user", "anonymous", "--admin"}, "hub passwd: --admin: anonymous cannot be an admin; give the admin view to a user with a password or a token\n"},
			{nil, []string{"passwd", "--nope"}, "hub passwd: unknown flag --nope (see hub passwd --help)\n"},
		} {
			got := hub(t, "", c.env, c.args...)
			if got.Exit != 2 || got.Stderr != c.stderr || got.Stdout != "" {
				t.Errorf("%v hub %q: exit %d, stderr %q, stdout %q;\nwant exit 2 and %q", c.env, c.args, got.Exit, got.Stderr, got.Stdout, c.stderr)
			}
			if strings.Contains(got.Stderr, "s3cret") {
				t.Errorf("hub %q repeats the password: %q", c.args, got.Stderr)
			}
		}
	})

	t.Run("config file mistakes", func(t *testing.T) {
		for content, stderr := range map[string]string{
			`http = "127.0.0.1:1" x`: "line 1: expected a top-level item to end with a newline, comment, or EOF, but got 'x' instead\n",
			`mqtt = "1883"`:          "key \"mqtt\" = \"1883\": want host:port (for example 127.0.0.1:1883), or \"\" for none\n",
			`version = true`:         "unknown key \"version\"; the keys are the flags of hub --help without their dashes, such as http, mqtt, users\n",
		} {
			path := writeConfig(t, content)
			if got := hub(t, "", nil, "--config", path); got.Exit != 2 || got.Stderr != "hub: config file "+path+": "+stderr {
				t.Errorf("config %q: exit %d, stderr %q; want exit 2 and %q", content, got.Exit, got.Stderr, stderr)
			}
		}
	})

	t.Run("failures", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "users.toml")
		if err := os.WriteFile(bad, []byte("[users.bob]\npassword = \"plain\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		badTOML := filepath.Join(t.TempDir(), "users.toml")
		if err := os.WriteFile(badTOML, []byte("[users.bob]\nread = \"nodes/#\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			stdin  string
			args   []string
			stderr string
		}{
			{"short\n", []string{"passwd", "--users", "u.toml", "--user", "bob", "--password-stdin"}, "hub passwd: a password has at least 8 characters\n"},
			{"", []string{"--users", bad, "--data", ""}, "hub: " + bad + ": bad users file: user \"bob\": password is not a bcrypt hash (write it with hub passwd)\n"},
			{"", []string{"--users", badTOML, "--data", ""}, "hub: " + badTOML + ": bad users file: line 2 (last key \"users.bob.read\"): incompatible types: TOML value has type string; destination has type slice\n"},
			{"", []string{"--users", "/no/such/users.toml", "--data", ""}, "hub: read the users file: open /no/such/users.toml: no such file or directory\n"},
			{"", []string{"--config", "/no/such/hub.toml"}, "hub: config file: open /no/such/hub.toml: no such file or directory\n"},
		} {
			got := hub(t, c.stdin, nil, c.args...)
			if got.Exit != 1 || got.Stderr != c.stderr {
				t.Errorf("hub %q: exit %d, stderr %q; want exit 1 and %q", c.args, got.Exit, got.Stderr, c.stderr)
			}
		}
	})

	t.Run("passwd --admin", func(t *testing.T) {
		users := filepath.Join(t.TempDir(), "users.toml")
		admin := func(want bool, args ...string) {
			t.Helper()
			got := hub(t, "a long password\n", nil, append([]string{"passwd", "--users", users, "--user", "root"}, args...)...)
			if got.Exit != 0 || got.Stdout != "wrote root in "+users+"; send SIGHUP to the hub to apply it\n" {
				t.Fatalf("hub passwd %v: %+v", args, got)
			}
			u, err := auth.Load(users)
			if err != nil {
				t.Fatal(err)
			}
			if root, _ := u.Lookup("root"); root.Admin != want || auth.New(u).Admin("root") != want {
				t.Fatalf("after hub passwd %v: admin %v, want %v", args, root.Admin, want)
			}
		}
		admin(true, "--password-stdin", "--admin", "--read", "nodes/#")
		admin(true, "--no-password", "--read", "lab/#") // kept when not given
		admin(false, "--no-password", "--admin=false")
	})
}

// TestAllowAnonymousWarns: --allow-anonymous on an address other machines
// can reach starts with a WARN line that says what it means. The process
// never binds that address: its MQTT port is taken, so it stops first.
func TestAllowAnonymousWarns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bin := buildHub(t)
	got := hubtest.RunCommand(t, bin, "", nil, "--http", "0.0.0.0:8080", "--mqtt", taken.Addr().String(), "--data", "", "--allow-anonymous")
	first, _, _ := strings.Cut(got.Stdout, "\n")
	want := `level=WARN msg="anyone who can reach the hub can read and command every device, without a password: ` +
		`--allow-anonymous on an address other machines can reach; give users with --users (see hub passwd)" listeners="--http 0.0.0.0:8080"`
	if !strings.Contains(first, want) || got.Exit != 1 || !strings.Contains(got.Stderr, "listen for MQTT on "+taken.Addr().String()) {
		t.Fatalf("first line %q, exit %d, stderr %q; want %q first", first, got.Exit, got.Stderr, want)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--allow-anonymous", "--mqtt", ":1883"}, "--mqtt :1883"},
		{[]string{"--allow-anonymous", "--http", "[::]:8080", "--mqtt", "0.0.0.0:1883"}, "--http [::]:8080, --mqtt 0.0.0.0:1883"},
		{[]string{"--allow-anonymous"}, ""},                                       // loopback
		{[]string{"--allow-anonymous", "--users", "u.toml", "--http", ":80"}, ""}, // users: no anonymous full access
	} {
		o, err := parseOptions(c.args, func(string) (string, bool) { return "", false }, io.Discard)
		if got := strings.Join(anonymousExposure(o), ", "); err != nil || got != c.want {
			t.Errorf("%v: exposure %q (%v), want %q", c.args, got, err, c.want)
		}
	}
}

// TestExampleConfigRunsFromTheCheckout: testdata/hub.toml, "a complete
// example", is safe to run as is: loopback addresses, its data relative to
// the working directory, no system path. The hub runs with it (on free
// ports, the only change) and keeps its store where it was started.
func TestExampleConfigRunsFromTheCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	example, err := filepath.Abs(filepath.Join("..", "..", "testdata", "hub.toml"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseOptions([]string{"--config", example}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !isLoopback(o.HTTPAddr) || !isLoopback(o.MQTTAddr) || o.MQTTSAddr != "" || o.DataDir == "" || filepath.IsAbs(o.DataDir) {
		t.Fatalf("testdata/hub.toml: http %q, mqtt %q, mqtts %q, data %q; want loopback listeners and a relative data directory",
			o.HTTPAddr, o.MQTTAddr, o.MQTTSAddr, o.DataDir)
	}
	for name, path := range map[string]string{"users": o.UsersFile, "tls-cert": o.TLSCert, "tls-key": o.TLSKey, "upstream-ca": o.UpstreamCA} {
		if path != "" {
			t.Errorf("testdata/hub.toml sets %s = %q: a path that exists only on a server", name, path)
		}
	}

	bin := buildHub(t)
	cmd, out, exited := startProcess(t, bin, "--config", example, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0")
	if _, err := os.Stat(filepath.Join(cmd.Dir, o.DataDir, "hub.db")); err != nil {
		t.Errorf("no store in the working directory: %v\n%s", err, out)
	}
	if strings.Contains(out.String(), "/var/") || strings.Contains(out.String(), "/etc/") {
		t.Errorf("the example's hub names a system path:\n%s", out)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("hub exited with %v\n%s", err, out)
	}
}
