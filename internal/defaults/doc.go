// Package defaults fills in the zero-value defaults of the hub's Config
// structs: each package documents a field's default and sets it with [Set].
//
// Concurrency: stateless.
package defaults
