//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package natstest

import "time"

// lockFile does not lock where flock is missing: parallel test processes may
// then each build the server, and the last rename wins (each build is
// complete before it is renamed into place).
func lockFile(string, time.Duration) (unlock func(), err error) {
	return func() {}, nil
}
