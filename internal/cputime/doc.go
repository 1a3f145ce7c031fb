// Package cputime reads the CPU time the process has used, for benchmarks
// that report it per operation: unlike wall time, it changes little with
// what neighbours on a shared machine do. Safe for concurrent use: it keeps
// no state.
package cputime
