package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

// tscFlags are the compiler options of every check: strict, no output,
// the module's own .d.ts found beside the .js it imports.
var tscFlags = []string{"--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler", "--lib", "es2022,dom"}

// runTSC runs the pinned TypeScript compiler on files (in web/jstest/types
// or web/dashboard) with tscFlags and extra, and returns its output and
// whether it passed.
func runTSC(t *testing.T, dir string, extra []string, files ...string) (string, bool) {
	t.Helper()
	node := hubtest.RequireNode(t)
	args := append(append(append([]string{hubtest.TypeScript(t)}, tscFlags...), extra...), files...)
	cmd := exec.Command(node.Path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if _, failed := errors.AsType[*exec.ExitError](err); err != nil && !failed {
		t.Fatalf("tsc: %v", err)
	}
	return string(out), err == nil
}

// TestMotehubDTS checks motehub.d.ts against the API: a file that uses
// every member with its types type-checks (and its lines marked
// @ts-expect-error, which the declarations must refuse, do not), and a
// file with one mistake fails, on its line, so that the check cannot pass
// by checking nothing.
func TestMotehubDTS(t *testing.T) {
	types := filepath.Join(hubtest.ModuleRoot(t), "web", "jstest", "types")
	if out, ok := runTSC(t, types, nil, "usage.ts"); !ok {
		t.Errorf("usage.ts does not type-check against motehub.d.ts:\n%s", out)
	}
	out, ok := runTSC(t, types, nil, "mistake.ts")
	if ok || !strings.Contains(out, "mistake.ts(6,") || !strings.Contains(out, "error TS2322") {
		t.Errorf("mistake.ts: tsc passed it, or failed elsewhere (want error TS2322 on line 6):\n%s", out)
	}
}

// TestMotehubJSDoc type-checks motehub.js itself from its JSDoc
// (tsc --allowJs --checkJs).
func TestMotehubJSDoc(t *testing.T) {
	dashboard := filepath.Join(hubtest.ModuleRoot(t), "web", "dashboard")
	if out, ok := runTSC(t, dashboard, []string{"--allowJs", "--checkJs", "--strict", "false"}, "motehub.js"); !ok {
		t.Errorf("motehub.js does not type-check from its JSDoc (tsc --allowJs --checkJs):\n%s", out)
	}
}
