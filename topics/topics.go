package topics

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxLength is the longest topic or filter MQTT can carry: a UTF-8 string is
// prefixed by a two-byte length.
const MaxLength = 65535

// Errors returned by the validators. Each names the rule that was broken; wrap
// them with the offending text for a user-facing message.
var (
	ErrEmpty       = errors.New("empty")
	ErrTooLong     = errors.New("longer than 65535 bytes")
	ErrInvalidUTF8 = errors.New("not valid UTF-8")
	ErrNUL         = errors.New("contains the NUL character")
	ErrWildcard    = errors.New("wildcard ('+' or '#') in a topic name")
	ErrBadWildcard = errors.New("'+' and '#' must fill a whole level, and '#' must be last")
	ErrBadBase     = errors.New("a base must be a topic name without empty, '.' or '..' levels")
)

// ValidateTopic reports whether name may be published to: non-empty, at most
// [MaxLength] bytes of valid UTF-8, no NUL, no wildcard characters.
func ValidateTopic(name string) error {
	if err := validateString(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return ErrWildcard
	}
	return nil
}

// ValidateFilter reports whether filter may be subscribed to: the rules of
// [ValidateTopic], except that '+' may fill any whole level and '#' may fill
// the last level.
func ValidateFilter(filter string) error {
	if err := validateString(filter); err != nil {
		return err
	}
	for rest := filter; ; {
		level, tail, more := strings.Cut(rest, "/")
		switch {
		case level == "#":
			if more {
				return ErrBadWildcard
			}
		case level == "+":
		case strings.ContainsAny(level, "+#"):
			return ErrBadWildcard
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// IsWildcard reports whether filter contains a wildcard level.
func IsWildcard(filter string) bool {
	return strings.ContainsAny(filter, "+#")
}

func validateString(s string) error {
	switch {
	case s == "":
		return ErrEmpty
	case len(s) > MaxLength:
		return ErrTooLong
	case strings.IndexByte(s, 0) >= 0:
		return ErrNUL
	case !utf8.ValidString(s):
		return ErrInvalidUTF8
	}
	return nil
}

// Match reports whether filter matches topic. Both are assumed valid (see
// [ValidateFilter] and [ValidateTopic]); Match does not allocate.
func Match(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		flevel, frest, fmore := strings.Cut(filter, "/")
		if flevel == "#" {
			return true
		}
		tlevel, trest, tmore := strings.Cut(topic, "/")
		if flevel != "+" && flevel != tlevel {
			return false
		}
		switch {
		case fmore && tmore:
			filter, topic = frest, trest
		case !fmore && !tmore:
			return true
		case fmore && !tmore:
			// "a/#" matches "a": the rest of the filter must be exactly "#".
			return frest == "#"
		default:
			return false
		}
	}
}
