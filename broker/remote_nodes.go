package broker

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// rotation decides which node of the cluster the Remote tries next, and
// when it waits before trying.
//
// The Remote is connected to one node at a time. When an attempt fails or
// the connection is lost, it tries the next node in the list at once; only
// after a whole round (as many failures in a row as there are nodes, a lost
// connection counting as its node's failure) does it wait its backoff. A
// connection ends the round only once it has lasted MaxReconnectInterval:
// nodes that each take the connection and drop it at once make a round of
// failures like any other, and the Remote waits after it. It
// stays on a node as long as that node serves it: a node that comes back is
// used again only when the one in use fails, as EMQX's and HiveMQ's clients
// do, so that a restarted node does not pull every replica back at once.
//
// The first node is drawn at random: replicas started together (a compose
// file, a Kubernetes deployment) spread over the nodes, so that one node's
// death moves only its share of them, and no node carries them all while
// the others idle. With one node, a failure is a round: the Remote waits
// before each attempt, as it always did.
type rotation struct {
	n       int // nodes
	current int // the node in use, or being tried
	failed  int // failures in a row since the last connect or wait
}

// newRotation starts at a random one of n nodes.
func newRotation(n int) rotation {
	return rotation{n: n, current: rand.N(n)}
}

// fail records that the current node failed (an attempt, or a connection
// lost) and moves to the next. It reports whether a whole round has failed:
// then the Remote waits before trying again, and a new round starts.
func (r *rotation) fail() (roundOver bool) {
	r.current = (r.current + 1) % r.n
	r.failed++
	if r.failed < r.n {
		return false
	}
	r.failed = 0
	return true
}

// connected records that the current node served: a connection that lasted
// ends the round, and the next failure starts a new one.
func (r *rotation) connected() { r.failed = 0 }

// roundErrors collects why each attempt of a round failed (each names its
// node), for the one error that names them all. It holds at most one entry
// per node: it is reset with each round.
type roundErrors []string

// add records err, which wraps ErrUnavailable and names its node.
func (e *roundErrors) add(err error) {
	*e = append(*e, strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": "))
}

func (e *roundErrors) reset() { *e = (*e)[:0] }

// err is why a round of attempts on n nodes failed, wrapping ErrUnavailable:
// with one node its one error, with several every node's.
func (e roundErrors) err(n int) error {
	if n == 1 && len(e) == 1 {
		return fmt.Errorf("%w: %s", ErrUnavailable, e[0])
	}
	return fmt.Errorf("%w: no node of the %d answered: %s", ErrUnavailable, n, strings.Join(e, "; "))
}
