//go:build !unix

package engine

// processGone cannot tell without Unix signals: a crashed holder's Lease is
// then taken over when it expires, as for one on another machine.
func processGone(int) bool { return false }
