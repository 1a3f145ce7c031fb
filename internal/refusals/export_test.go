package refusals

import "time"

// SetClock makes l read the time from now.
func SetClock(l *Log, now func() time.Time) { l.now = now }

// Addresses is how many addresses l counts one by one in its window.
func Addresses(l *Log) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byAddr)
}
