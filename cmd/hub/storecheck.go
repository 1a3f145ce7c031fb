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
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: hub store check DIR (the --data directory of a stopped hub)")
		return 2
	}
	if err := broker.CheckStore(args[1]); err != nil {
		fmt.Fprintln(stderr, "hub store check:", err)
		return 1
	}
	fmt.Fprintf(stdout, "the store in %s is sound\n", args[1])
	return 0
}
