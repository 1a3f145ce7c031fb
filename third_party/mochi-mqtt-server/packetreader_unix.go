// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co

//go:build unix

package mqtt

import "syscall"

// rawReads says whether packetReader reads a connection's socket itself
// (through its RawConn) where it has one.
const rawReads = true

// readFD is one read(2) of the socket fd into b.
func readFD(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }
