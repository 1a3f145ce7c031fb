// Package tomltext words the errors of the TOML library for people: the
// users file and the config file are both TOML, and a mistake in either is
// reported the same way, with its line and key and without the library's
// "toml: " in front.
//
// Concurrency: a pure function, safe for concurrent use.
package tomltext
