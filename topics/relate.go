package topics

import "strings"

// Overlap reports whether some topic matches both filters a and b (both valid).
// A subscription to a may then deliver messages that b names.
func Overlap(a, b string) bool {
	if dollarOnly(a) && wildRoot(b) || dollarOnly(b) && wildRoot(a) {
		return false // a wildcard at the root never matches a '$' topic
	}
	for {
		la, ra, moreA := strings.Cut(a, "/")
		lb, rb, moreB := strings.Cut(b, "/")
		if la == "#" || lb == "#" {
			return true
		}
		if la != "+" && lb != "+" && la != lb {
			return false
		}
		switch {
		case moreA && moreB:
			a, b = ra, rb
		case !moreA && !moreB:
			return true
		case moreA: // b ends here: "x/#" matches "x"
			return ra == "#"
		default:
			return rb == "#"
		}
	}
}

// Covers reports whether filter general matches every topic that filter
// specific matches (both valid): a client allowed general may subscribe to
// specific without any message of it needing a check.
func Covers(general, specific string) bool {
	if wildRoot(general) && dollarOnly(specific) {
		return false
	}
	for {
		lg, rg, moreG := strings.Cut(general, "/")
		ls, rs, moreS := strings.Cut(specific, "/")
		if lg == "#" {
			return true
		}
		switch {
		case ls == "#":
			return false // specific reaches levels general names one by one
		case lg == "+":
		case ls == "+" || lg != ls:
			return false
		}
		switch {
		case moreG && moreS:
			general, specific = rg, rs
		case !moreG && !moreS:
			return true
		case moreG: // specific ends here; general matches it only as "x/#"
			return rg == "#"
		default:
			return false
		}
	}
}

// wildRoot reports whether filter starts with a wildcard level.
func wildRoot(filter string) bool {
	return filter != "" && (filter[0] == '+' || filter[0] == '#')
}

// dollarOnly reports whether filter can match only '$' topics.
func dollarOnly(filter string) bool { return filter != "" && filter[0] == '$' }
