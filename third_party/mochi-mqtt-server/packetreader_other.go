// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co

//go:build !unix

package mqtt

import "errors"

// rawReads is false: elsewhere than Unix every connection is read through
// its Read, into a buffer of its own (packetreader_unix.go).
const rawReads = false

// readFD is never called here.
func readFD(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
