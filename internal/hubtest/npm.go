package hubtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The npm packages the tests use are pinned, each in a directory of
// testdata with its package.json and package-lock.json; `make test` runs
// npm ci in each (see the Makefile). They are under testdata so that the
// go tool never looks into node_modules.

// pinnedPackage returns the directory of the npm package name as installed
// in dir (relative to the module's root), after checking that the version
// dir's package.json pins is the one installed. When it is not installed,
// or another version is, the test is skipped loudly, or fails under
// HUB_REQUIRE_ALL=1 (see [RequireCommand]); what names it in messages.
// Nothing is downloaded here: `make test` installs it.
func pinnedPackage(t testing.TB, dir, name, what string) string {
	t.Helper()
	root := filepath.Join(moduleRoot(t), filepath.FromSlash(dir))
	var pinned struct{ Dependencies map[string]string }
	if err := readJSON(filepath.Join(root, "package.json"), &pinned); err != nil {
		t.Fatalf("%s for the tests: %v", what, err)
	}
	want := pinned.Dependencies[name]
	install := fmt.Sprintf("Install it with `npm ci` in %s (nodejs and npm from apt-get), or run `make test`, which does.", dir)
	pkg := filepath.Join(root, "node_modules", filepath.FromSlash(name))
	var installed struct{ Version string }
	err := readJSON(filepath.Join(pkg, "package.json"), &installed)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		missing(t, fmt.Sprintf("!!! %s (the npm package %s %s) is not installed, so this test cannot run. %s", what, name, want, install))
	case err != nil:
		t.Fatalf("%s for the tests: %v", what, err)
	case installed.Version != want:
		missing(t, fmt.Sprintf("!!! %s %s is installed where the tests pin %s, so this test cannot run. %s", what, installed.Version, want, install))
	}
	return pkg
}

// moduleRoot is the directory of go.mod, found from the test's working
// directory (its package's directory) upwards.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// ModuleRoot is the directory of the module's go.mod, for a test that runs
// files kept outside Go packages (web/jstest).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	return moduleRoot(t)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
