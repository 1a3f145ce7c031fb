package history

// SetQueryBounds sets the entries a Query reads in all and per read
// transaction, for a test, and returns the undo.
func SetQueryBounds(scan, chunk int) (undo func()) {
	oldScan, oldChunk := maxScan, queryChunk
	maxScan, queryChunk = scan, chunk
	return func() { maxScan, queryChunk = oldScan, oldChunk }
}
