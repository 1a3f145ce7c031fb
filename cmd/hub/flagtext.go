package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The command line's words: usage errors (exit status 2, as Go's flag
// package gives), the flag package's messages in the double-dash style of
// hub --help, and what a flag wants when its value does not parse.

// usageError is a mistake in how the hub was called (a flag, its
// environment twin, the --config file, a combination): main exits with
// status 2 for it, 1 for any other error.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usage marks err, when not nil, as a usage error.
func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// exitStatus is the process's exit status for what a command returned:
// 0 for nil, 2 for a usage error, 1 for anything else.
func exitStatus(err error) int {
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	default:
		return 1
	}
}

// secretFlags are never repeated in an error: their values may hold a
// password (--upstream takes user:password@host).
var secretFlags = map[string]bool{"upstream": true, "upstream-password": true}

// shown is how an error repeats the value given to flag name after the
// flag's name: as typed, quoted when it is empty or holds spaces or quotes,
// or not at all for a secret.
func shown(name, value string) string {
	switch {
	case secretFlags[name]:
		return ""
	case value == "" || strings.ContainsFunc(value, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r == 0x7f }):
		return " " + strconv.Quote(value)
	}
	return " " + value
}

// quoted is how an error repeats the value of flag name from the
// environment or the --config file: quoted, or not at all for a secret.
func quoted(name, value string) string {
	if secretFlags[name] {
		return ""
	}
	return "=" + strconv.Quote(value)
}

// explainValues makes every flag of fs say what it wants when its value
// does not parse: the flag package says only "parse error" for a number, a
// duration or a boolean.
func explainValues(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) { f.Value = explained{f.Value} })
}

// explained is a flag.Value whose parse errors name what it takes.
type explained struct{ flag.Value }

func (e explained) Set(s string) error {
	err := e.Value.Set(s)
	if err == nil || err.Error() != "parse error" { // the flag package's errParse, unexported
		return err
	}
	getter, ok := e.Value.(flag.Getter)
	if !ok {
		return err
	}
	switch getter.Get().(type) {
	case bool:
		return errors.New("want true or false")
	case int, int64, uint, uint64:
		return errors.New("want a whole number")
	case float64:
		return errors.New("want a number")
	case time.Duration:
		return errors.New("want a duration such as 500ms, 5s or 2m")
	}
	return err
}

// IsBoolFlag keeps a boolean flag one that needs no value (--demo).
func (e explained) IsBoolFlag() bool {
	b, ok := e.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// The flag package's messages (flag.FlagSet.failf), which name flags with
// one dash and put the value before the flag.
var (
	unknownFlag  = regexp.MustCompile(`^flag provided but not defined: -(.+)$`)
	missingValue = regexp.MustCompile(`^flag needs an argument: -(.+)$`)
	badValue     = regexp.MustCompile(`^invalid value ("(?:[^"\\]|\\.)*") for flag -([^:]+): (.*)$`)
	badBool      = regexp.MustCompile(`^invalid boolean value ("(?:[^"\\]|\\.)*") for -([^:]+): (.*)$`)
	badBoolFlag  = regexp.MustCompile(`^invalid boolean flag ([^:]+): (.*)$`)
)

// parseError rewrites an error of fs.Parse in the words of hub --help
// ("--http 8080: want host:port ..."), as a usage error; command is how
// the person ran it ("hub", "hub passwd"), for the pointer to its help.
func parseError(err error, command string) error {
	msg := err.Error()
	if m := unknownFlag.FindStringSubmatch(msg); m != nil {
		return usage(fmt.Errorf("unknown flag --%s (see %s --help)", m[1], command))
	}
	if m := missingValue.FindStringSubmatch(msg); m != nil {
		return usage(fmt.Errorf("--%s needs a value (see %s --help)", m[1], command))
	}
	if m := badValue.FindStringSubmatch(msg); m != nil {
		return usage(fmt.Errorf("--%s%s: %s", m[2], shown(m[2], unquote(m[1])), m[3]))
	}
	if m := badBool.FindStringSubmatch(msg); m != nil { // only --flag=value gives a boolean a value
		return usage(fmt.Errorf("--%s=%s: %s", m[2], unquote(m[1]), m[3]))
	}
	if m := badBoolFlag.FindStringSubmatch(msg); m != nil {
		return usage(fmt.Errorf("--%s: %s", m[1], m[2]))
	}
	return usage(fmt.Errorf("%s (see %s --help)", msg, command))
}

// unquote is a Go-quoted string's value, or s itself.
func unquote(s string) string {
	if v, err := strconv.Unquote(s); err == nil {
		return v
	}
	return s
}

// printFlag writes one flag of a help text: its name and argument, its
// usage, its default, and its environment twin when it has one.
func printFlag(out io.Writer, f *flag.Flag, env string) {
	arg, text := flag.UnquoteUsage(f)
	if arg != "" {
		arg = " " + arg
	}
	fmt.Fprintf(out, "  --%s%s\n      %s", f.Name, arg, text)
	if f.DefValue != "" && f.DefValue != "false" {
		fmt.Fprintf(out, " (default %q)", f.DefValue)
	}
	if env != "" {
		fmt.Fprintf(out, " [%s]", env)
	}
	fmt.Fprintln(out)
}
