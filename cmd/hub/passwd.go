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
)

const passwdUsage = `Usage: hub passwd --users FILE --user NAME [flags]

Creates or updates a user of a users file (made if missing), and writes it
back readable by its owner only. The hub applies it on SIGHUP.

  hub passwd --users users.toml --user alice --read 'nodes/#' --write 'nodes/+/relay/+/set'
  hub passwd --users users.toml --user anonymous --read 'public/#'
  hub passwd --users users.toml --user ci --no-password --token --write 'nodes/+/ota'
  hub passwd --users users.toml --user alice --delete

The password is asked twice on a terminal, or read as one line from
standard input with --password-stdin. Rules given replace the user's rules;
without any, an existing user keeps them.

`

// runPasswd is `hub passwd`.
func runPasswd(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("hub passwd", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		file, name                 string
		read, write, readwrite     []string
		fromStdin, noPassword      bool
		newToken, remove, hasRules bool
	)
	list := func(dst *[]string) func(string) error {
		return func(v string) error { *dst = append(*dst, v); hasRules = true; return nil }
	}
	fs.StringVar(&file, "users", "", "the users `FILE`")
	fs.StringVar(&name, "user", "", "the user's `NAME` (anonymous: clients without credentials)")
	fs.Func("read", "topic `FILTER` the user may receive (repeatable)", list(&read))
	fs.Func("write", "topic `FILTER` the user may publish to (repeatable)", list(&write))
	fs.Func("readwrite", "topic `FILTER` the user may receive and publish to (repeatable)", list(&readwrite))
	fs.BoolVar(&fromStdin, "password-stdin", false, "read the password as one line from standard input")
	fs.BoolVar(&noPassword, "no-password", false, "set no new password: keep the user's, or make a token-only user")
	fs.BoolVar(&newToken, "token", false, "add an API token for scripts (Authorization: Bearer) and print it once")
	fs.BoolVar(&remove, "delete", false, "remove the user")
	fs.Usage = func() {
		fmt.Fprint(stdout, passwdUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if file == "" || name == "" {
		return errors.New("--users and --user are required (see hub passwd --help)")
	}

	users := auth.Empty()
	if _, err := os.Stat(file); err == nil {
		if users, err = auth.Load(file); err != nil {
			return err
		}
	}
	if remove {
		if _, ok := users.Lookup(name); !ok {
			return fmt.Errorf("no user %q in %s", name, file)
		}
		if err := auth.WriteFile(file, users.Without(name)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s from %s; send SIGHUP to the hub to apply it\n", name, file)
		return nil
	}

	user := &auth.User{Name: name}
	if old, ok := users.Lookup(name); ok {
		*user = *old
	}
	if hasRules {
		user.Rules = nil
		for _, set := range []struct {
			filters []string
			access  auth.Access
		}{{read, auth.Read}, {write, auth.Write}, {readwrite, auth.Read | auth.Write}} {
			for _, f := range set.filters {
				user.Rules = append(user.Rules, auth.Rule{Filter: f, Access: set.access})
			}
		}
	}
	if name != auth.Anonymous && !noPassword {
		password, err := readPassword(stdin, stdout, fromStdin)
		if err != nil {
			return err
		}
		if user.PasswordHash, err = auth.HashPassword(password); err != nil {
			return err
		}
	}
	var token string
	if newToken {
		if name == auth.Anonymous {
			return errors.New("anonymous takes no token")
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
	if err := auth.WriteFile(file, updated); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s in %s; send SIGHUP to the hub to apply it\n", name, file)
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
