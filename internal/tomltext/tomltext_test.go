package tomltext

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestError(t *testing.T) {
	var v struct {
		Port int `toml:"port"`
	}
	for input, want := range map[string]string{
		"port = 1\nport = [":      "line 2 (key \"port\"): ",
		"[[[":                     "line 1: ",
		"port = \"not a number\"": "line 1 (last key \"port\"): incompatible types",
	} {
		_, err := toml.Decode(input, &v)
		if err == nil {
			t.Fatalf("%q decoded", input)
		}
		got := Error(err).Error()
		if !strings.HasPrefix(got, want) || strings.Contains(got, "toml:") {
			t.Errorf("Error(%q) = %q, want it to start %q and no \"toml:\"", input, got, want)
		}
	}
}
