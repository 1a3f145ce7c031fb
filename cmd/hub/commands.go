package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one of hub's subcommands.
type command struct {
	name    string
	summary string          // one line of hub --help
	help    func(io.Writer) // hub help NAME, hub NAME --help
}

// commands are hub's subcommands, in the order hub --help lists them.
func commands() []command {
	return []command{
		{"passwd", "add, change or remove a user of a users file (--users)", printPasswdUsage},
		{"store", "check a stopped hub's --data, or drop its damaged history: hub store check|drop-history DIR", printStoreUsage},
		{"version", "print the version, commit, Go version and platform (also --version, -v)", printVersionUsage},
		{"help", "show this help, or a command's: hub help passwd", printHelpUsage},
	}
}

// printCommands is the Commands section of hub --help.
func printCommands(out io.Writer) {
	fmt.Fprintln(out, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(out, "  %-8s %s\n", c.name, c.summary)
	}
}

// commandNames is "passwd, store, version and help".
func commandNames() string {
	cmds := commands()
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.name
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// hubMain is the command line: a command, or (without one) the hub itself
// until SIGINT or SIGTERM. Errors go to stderr as one line; it returns the
// exit status: 0, 1 for a failure, 2 for a usage error.
func hubMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name, err := "hub", error(nil)
	switch first(args) {
	case "passwd":
		name, err = "hub passwd", runPasswd(args[1:], stdin, stdout)
	case "store":
		return runStore(args[1:], stdout, stderr)
	case "version":
		name, err = "hub version", runVersion(args[1:], stdout)
	case "help":
		name, err = "hub help", runHelp(args[1:], stdout)
	default:
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		context.AfterFunc(ctx, stop) // a second signal ends the process the default way
		err = run(ctx, args, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return exitStatus(err)
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// isHelp reports whether args ask for help and nothing else.
func isHelp(args []string) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// runHelp is hub help [COMMAND].
func runHelp(args []string, stdout io.Writer) error {
	switch {
	case len(args) == 0 || isHelp(args):
		var o options
		printUsage(hubFlags(&o), stdout)
		return nil
	case len(args) > 1:
		return usage(fmt.Errorf("one command at most, such as hub help passwd (got %q)", strings.Join(args, " ")))
	}
	for _, c := range commands() {
		if c.name == args[0] {
			c.help(stdout)
			return nil
		}
	}
	return usage(fmt.Errorf("unknown command %q: the commands are %s", args[0], commandNames()))
}

func printHelpUsage(out io.Writer) {
	fmt.Fprint(out, "Usage: hub help [COMMAND]\n\nShows hub --help, or the help of COMMAND (one of "+commandNames()+").\n")
}

// runVersion is hub version.
func runVersion(args []string, stdout io.Writer) error {
	switch {
	case isHelp(args):
		printVersionUsage(stdout)
		return nil
	case len(args) > 0:
		return usage(fmt.Errorf("unexpected argument %q: hub version takes none", args[0]))
	}
	fmt.Fprintln(stdout, version())
	return nil
}

func printVersionUsage(out io.Writer) {
	fmt.Fprint(out, "Usage: hub version (or hub --version, hub -v)\n\n"+
		"Prints this build's version: the module version, the commit, the Go version\nand the platform.\n")
}
