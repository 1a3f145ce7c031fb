//go:build !linux

package linger

import "net"

// BoundUnsent does nothing here: TCP_NOTSENT_LOWAT is Linux's (and its
// number differs elsewhere). It reports false.
func BoundUnsent(net.Conn, int) bool { return false }
