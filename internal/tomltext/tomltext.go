package tomltext

import (
	"errors"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is err, a TOML decoding error, as a person reads it:
// "line 3 (key \"log-level\"): expected ...", without "toml: ".
func Error(err error) error {
	var pe toml.ParseError
	switch {
	case !errors.As(err, &pe): // a type mismatch: "toml: line 2 (last key ...): ..."
		return errors.New(strings.TrimPrefix(err.Error(), "toml: "))
	case pe.LastKey != "":
		return fmt.Errorf("line %d (key %q): %s", pe.Position.Line, pe.LastKey, pe.Message)
	}
	return fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
}
