package topics

import "strings"

// Index maps filters to subscribers and finds the subscribers of a topic by
// walking only the levels of that topic, never by scanning every subscription.
// A subscriber is any comparable value (bridge uses its client pointer).
//
// The zero Index is empty and ready to use. It is not safe for concurrent use.
type Index[S comparable] struct {
	root node[S]
	size int
}

type node[S comparable] struct {
	children map[string]*node[S] // literal levels below this one
	plus     *node[S]            // the '+' level below this one
	hash     map[S]struct{}      // subscribers of "<this level>/#"
	exact    map[S]struct{}      // subscribers whose filter ends at this level
}

// Len returns the number of (filter, subscriber) pairs in the index.
func (x *Index[S]) Len() int { return x.size }

// Add subscribes s to filter, which must be valid (see [ValidateFilter]). It
// reports false when s already held that filter.
func (x *Index[S]) Add(filter string, s S) bool {
	n := &x.root
	for {
		level, rest, more := strings.Cut(filter, "/")
		if level == "#" {
			return x.insert(&n.hash, s)
		}
		n = n.child(level)
		if !more {
			return x.insert(&n.exact, s)
		}
		filter = rest
	}
}

func (x *Index[S]) insert(set *map[S]struct{}, s S) bool {
	if *set == nil {
		*set = make(map[S]struct{}, 1)
	}
	if _, ok := (*set)[s]; ok {
		return false
	}
	(*set)[s] = struct{}{}
	x.size++
	return true
}

// Remove unsubscribes s from filter and reports whether it was subscribed.
// Levels left without subscribers are freed.
func (x *Index[S]) Remove(filter string, s S) bool {
	if x.root.remove(filter, s) {
		x.size--
		return true
	}
	return false
}

// Match calls fn for every (filter, subscriber) pair whose filter matches
// topic. A subscriber holding several matching filters is passed once for
// each; callers that deliver once per subscriber deduplicate. fn must not
// change the index. Match itself does not allocate.
func (x *Index[S]) Match(topic string, fn func(S)) {
	dollar := topic != "" && topic[0] == '$'
	x.root.match(topic, false, !dollar, fn)
}

// match visits the subscribers at n and below for the unconsumed part of a
// topic. end says that every level has been consumed; wild says whether
// wildcard subscriptions at this level may match (false only at the root for
// a '$' topic).
func (n *node[S]) match(rest string, end, wild bool, fn func(S)) {
	if wild {
		for s := range n.hash {
			fn(s)
		}
	}
	if end {
		for s := range n.exact {
			fn(s)
		}
		return
	}
	level, tail, more := strings.Cut(rest, "/")
	if c := n.children[level]; c != nil {
		c.match(tail, !more, true, fn)
	}
	if wild && n.plus != nil {
		n.plus.match(tail, !more, true, fn)
	}
}

func (n *node[S]) child(level string) *node[S] {
	if level == "+" {
		if n.plus == nil {
			n.plus = new(node[S])
		}
		return n.plus
	}
	c := n.children[level]
	if c == nil {
		if n.children == nil {
			n.children = make(map[string]*node[S])
		}
		c = new(node[S])
		n.children[level] = c
	}
	return c
}

func (n *node[S]) remove(filter string, s S) bool {
	level, rest, more := strings.Cut(filter, "/")
	if level == "#" {
		return deleteFrom(n.hash, s)
	}
	c := n.children[level]
	if level == "+" {
		c = n.plus
	}
	if c == nil {
		return false
	}
	var removed bool
	if more {
		removed = c.remove(rest, s)
	} else {
		removed = deleteFrom(c.exact, s)
	}
	if removed && c.empty() {
		if level == "+" {
			n.plus = nil
		} else {
			delete(n.children, level)
		}
	}
	return removed
}

func (n *node[S]) empty() bool {
	return len(n.children) == 0 && n.plus == nil && len(n.hash) == 0 && len(n.exact) == 0
}

func deleteFrom[S comparable](set map[S]struct{}, s S) bool {
	if _, ok := set[s]; !ok {
		return false
	}
	delete(set, s)
	return true
}
