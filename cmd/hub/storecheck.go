package main

import (
	"fmt"
	"io"

	"github.com/motehub/motehub/broker"
)

// runStore is `hub store check DIR`: it reads every page of the store in
// DIR (a stopped hub's --data) and says whether it is sound. It returns the
// exit status: 0 sound, 1 damaged or not readable, 2 a usage mistake.
func runStore(args []string, stdout, stderr io.Writer) int {
	if isHelp(args) {
		printStoreUsage(stdout)
		return 0
	}
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "hub store: want hub store check DIR (the --data directory of a stopped hub; see hub store --help)")
		return 2
	}
	if err := broker.CheckStore(args[1]); err != nil {
		fmt.Fprintln(stderr, "hub store check:", err)
		return 1
	}
	fmt.Fprintf(stdout, "the store in %s is sound\n", args[1])
	return 0
}

func printStoreUsage(out io.Writer) {
	fmt.Fprint(out, "Usage: hub store check DIR\n\n"+
		"Reads every page of the store in DIR, the --data directory of a stopped hub,\n"+
		"without changing it, and says whether it is sound. Exit status: 0 sound,\n"+
		"1 damaged or not readable (the message says what to do), 2 a usage mistake.\n")
}
