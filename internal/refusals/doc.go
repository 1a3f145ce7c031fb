// Package refusals is where every door of the hub reports what it refuses
// (a CONNECT with a wrong password, a page of another origin, a 401, a 429
// lockout) and the clients it cuts off (a browser too slow to read its
// messages): one WARN line for each, with the door, the client's address,
// the user it claimed and the reason, and never a password or a token (no
// method takes one).
//
// A flood cannot fill the disk: after Config.PerAddress lines from one
// address in a window (a minute), further ones are counted, and one line
// "... and N more from ADDR in the last minute" follows when the window
// ends; Config.MaxLines bounds the lines of a window over all addresses, and
// Config.MaxSummaries the summary lines. The addresses counted in a window
// are bounded too (Config.MaxAddresses): past it, the others are counted
// together.
//
// Concurrency: a Log is safe for concurrent use; its lock is a leaf, held
// for O(1) work per report (O(addresses) once a window, to summarise), and
// lines are written after it is released. It starts no goroutine of its own
// while idle: a pending summary waits on one timer (time.AfterFunc, whose
// function runs on a goroutine of the runtime's for the moment it takes to
// write the summaries), and Close stops that timer, waits for a summary
// it is writing, and writes what is pending.
package refusals
