package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/topics"
)

const passwdUsage = `Usage: hub passwd --users FILE --user NAME [flags]

Creates or updates a user of a users file (made if missing), and writes it
back readable by its owner only. The hub applies it on SIGHUP.

  hub passwd --users users.toml --user alice --read 'nodes/#' --write 'nodes/+/relay/+/set'
  hub passwd --users users.toml --user anonymous --read 'public/#'
  hub passwd --users users.toml --user ci --no-password --token --write 'nodes/+/ota'
  hub passwd --users users.toml --user root --no-password --admin
  hub passwd --users users.toml --user alice --delete

The password is asked twice on a terminal, or read as one line from
standard input with --password-stdin. Rules given replace the user's rules;
without any, an existing user keeps them, and its admin flag unless --admin
or --admin=false is given.

Flags:
`

// passwdArgs is what hub passwd was asked to do.
type passwdArgs struct {
	file, name                 string
	read, write, readwrite     []string
	fromStdin, noPassword      bool
	newToken, remove, hasRules bool
	admin                      bool
}

// passwdFlags are hub passwd's flags, writing to a. A rule's filter is
// checked as it is given, so that a bad one is the flag's fault.
func passwdFlags(a *passwdArgs) *flag.FlagSet {
	fs := flag.NewFlagSet("hub passwd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned (parseError); --help is printed by runPasswd
	fs.Usage = func() {}
	list := func(dst *[]string) func(string) error {
		return func(v string) error {
			if err := topics.ValidateFilter(v); err != nil {
				return err
			}
			*dst = append(*dst, v)
			a.hasRules = true
			return nil
		}
	}
	fs.StringVar(&a.file, "users", "", "the users `FILE`")
	fs.StringVar(&a.name, "user", "", "the user's `NAME` (anonymous: clients without credentials)")
	fs.Func("read", "topic `FILTER` the user may receive (repeatable)", list(&a.read))
	fs.Func("write", "topic `FILTER` the user may publish to (repeatable)", list(&a.write))
	fs.Func("readwrite", "topic `FILTER` the user may receive and publish to (repeatable)", list(&a.readwrite))
	fs.BoolVar(&a.fromStdin, "password-stdin", false, "read the password as one line from standard input")
	fs.BoolVar(&a.noPassword, "no-password", false, "set no new password: keep the user's, or make a token-only user")
	fs.BoolVar(&a.newToken, "token", false, "add an API token for scripts (Authorization: Bearer) and print it once")
	fs.BoolVar(&a.admin, "admin", false, "let the user open the admin view (connected clients, retained messages); --admin=false takes it back")
	fs.BoolVar(&a.remove, "delete", false, "remove the user")
	explainValues(fs)
	return fs
}

// printPasswdUsage is hub passwd --help.
func printPasswdUsage(out io.Writer) {
	fmt.Fprint(out, passwdUsage)
	fs := passwdFlags(&passwdArgs{})
	for _, name := range []string{"users", "user", "read", "write", "readwrite", "password-stdin", "no-password", "token", "admin", "delete"} {
		printFlag(out, fs.Lookup(name), "")
	}
}

// runPasswd is `hub passwd`.
func runPasswd(args []string, stdin io.Reader, stdout io.Writer) error {
	var a passwdArgs
	fs := passwdFlags(&a)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printPasswdUsage(stdout)
			return nil
		}
		return parseError(err, "hub passwd")
	}
	if fs.NArg() > 0 {
		return usage(fmt.Errorf("unexpected argument %q (see hub passwd --help)", fs.Arg(0)))
	}
	if a.file == "" || a.name == "" {
		return usage(errors.New("--users and --user are required (see hub passwd --help)"))
	}
	adminGiven := false
	fs.Visit(func(f *flag.Flag) { adminGiven = adminGiven || f.Name == "admin" })
	if a.name == auth.Anonymous && a.admin {
		return usage(errors.New("--admin: anonymous cannot be an admin; give the admin view to a user with a password or a token"))
	}

	users := auth.Empty()
	if _, err := os.Stat(a.file); err == nil {
		if users, err = auth.Load(a.file); err != nil {
			return err
		}
	}
	if a.remove {
		if _, ok := users.Lookup(a.name); !ok {
			return fmt.Errorf("no user %q in %s", a.name, a.file)
		}
		if err := auth.WriteFile(a.file, users.Without(a.name)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s from %s; send SIGHUP to the hub to apply it\n", a.name, a.file)
		return nil
	}

	user := &auth.User{Name: a.name}
	if old, ok := users.Lookup(a.name); ok {
		*user = *old
	}
	if a.hasRules {
		user.Rules = nil
		for _, set := range []struct {
			filters []string
			access  auth.Access
		}{{a.read, auth.Read}, {a.write, auth.Write}, {a.readwrite, auth.Read | auth.Write}} {
			for _, f := range set.filters {
				user.Rules = append(user.Rules, auth.Rule{Filter: f, Access: set.access})
			}
		}
	}
	if adminGiven {
		user.Admin = a.admin
	}
	if a.name != auth.Anonymous && !a.noPassword {
		password, err := readPassword(stdin, stdout, a.fromStdin)
		if err != nil {
			return err
		}
		if user.PasswordHash, err = auth.HashPassword(password); err != nil {
			return err
		}
	}
	var token string
	if a.newToken {
		if a.name == auth.Anonymous {
			return usage(errors.New("--token: anonymous takes no token"))
		}
		var hash string
		token, hash = auth.NewToken()
		user.TokenHashes = append(user.TokenHashes, hash)
	}
	updated, err := users.With(user)
	if err == nil {
		// What the file will say must parse: the same checks as at load time.
		_, err = auth.Parse(updated.Marshal())
	}
	if err != nil {
		return err
	}
	if err := auth.WriteFile(a.file, updated); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s in %s; send SIGHUP to the hub to apply it\n", a.name, a.file)
	if token != "" {
		fmt.Fprintf(stdout, "API token (shown once): %s\n", token)
	}
	return nil
}

// readPassword asks twice on a terminal, or reads one line from stdin.
func readPassword(stdin io.Reader, prompt io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("standard input is not a terminal: pass --password-stdin, or --no-password")
	}
	var answers [2]string
	for i, q := range []string{"Password: ", "Again: "} {
		fmt.Fprint(prompt, q)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		answers[i] = string(b)
	}
	if answers[0] != answers[1] {
		return "", errors.New("the two passwords differ")
	}
	return answers[0], nil
}
