package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/history"
)

// runStore is `hub store check DIR`, which reads every page of the store in
// DIR (a stopped hub's --data) and says whether it is sound, and `hub store
// drop-history DIR`, which removes a damaged history from it and keeps the
// rest. It returns the exit status: 0 done (sound), 1 damaged or not
// readable, 2 a usage mistake.
func runStore(args []string, stdout, stderr io.Writer) int {
	if isHelp(args) {
		printStoreUsage(stdout)
		return 0
	}
	if len(args) != 2 || (args[0] != "check" && args[0] != "drop-history") {
		fmt.Fprintln(stderr, "hub store: want hub store check DIR or hub store drop-history DIR (the --data directory of a stopped hub; see hub store --help)")
		return 2
	}
	dir := args[1]
	if args[0] == "drop-history" {
		kept, err := broker.DropPart(dir, history.Bucket())
		if err != nil {
			fmt.Fprintln(stderr, "hub store drop-history:", err)
			return 1
		}
		fmt.Fprintf(stdout, "the history in %s is dropped, the rest kept; the file as it was is %s (remove it when you no longer need it)\n", dir, kept)
		return 0
	}
	if err := broker.CheckStore(dir, history.Bucket()); err != nil {
		if errors.Is(err, broker.ErrPartDamaged) {
			fmt.Fprintf(stderr, "hub store check: %v\nThe damage is in the history only: the hub starts without history. To drop it and keep the rest, run: hub store drop-history %s\n", err, dir)
			return 1
		}
		fmt.Fprintln(stderr, "hub store check:", err)
		return 1
	}
	fmt.Fprintf(stdout, "the store in %s is sound\n", dir)
	return 0
}

func printStoreUsage(out io.Writer) {
	fmt.Fprint(out, "Usage: hub store check DIR\n"+
		"       hub store drop-history DIR\n\n"+
		"check reads every page of the store in DIR, the --data directory of a stopped\n"+
		"hub, without changing it, and says whether it is sound, and whether damage\n"+
		"lies in the history only (then the hub starts without history).\n\n"+
		"drop-history removes the history from the store, keeping the rest (sessions,\n"+
		"retained and recent messages): it copies the rest to a new file, keeps the\n"+
		"old one as hub.db.damaged, and puts the copy in its place. For a history\n"+
		"found damaged; the hub records history again from its next start.\n\n"+
		"Exit status: 0 sound or done, 1 damaged or not readable (the message says\n"+
		"what to do), 2 a usage mistake.\n")
}
