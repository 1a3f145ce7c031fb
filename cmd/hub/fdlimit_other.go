//go:build !unix

package main

import "log/slog"

// logOpenFileLimit does nothing where there is no limit on open files to
// raise (fdlimit_unix.go).
func logOpenFileLimit(*slog.Logger, int, bool) {}
