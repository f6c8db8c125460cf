// Package fault holds idemgate's named fault points: places in the
// pipeline where a test can make the process die as kill -9 would, to
// prove that nothing accepted is lost and nothing is applied twice; and
// mutation points, where a test makes the process answer wrongly, to
// prove that a check can fail (Mutations).
//
// The points are compiled in always. They are configured from the
// environment (IDEMGATE_FAULTS) and cost one nil check when off.
package fault

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The named fault points.
const (
	AfterClaimCommit  = "api.after-claim-commit"        // claim committed, event not yet emitted
	AfterKafkaAck     = "api.after-kafka-ack"           // event acknowledged, claim not yet PUBLISHED
	InProjectorTx     = "projector.in-tx"               // effect written, transaction not committed
	AfterProjectorTx  = "projector.after-commit"        // transaction committed, offset not committed
	AfterUpstreamCall = "projector.after-upstream-call" // upstream answered, its answer not yet recorded
	AfterRelayPublish = "relay.after-publish"           // result published, outbox row not marked sent
)

// Points lists every fault point.
func Points() []string {
	return []string{AfterClaimCommit, AfterKafkaAck, InProjectorTx, AfterProjectorTx, AfterUpstreamCall, AfterRelayPublish}
}

// The mutation points: not crashes but deliberate wrong answers, which
// only the tests that prove a check can fail turn on. No deployment has
// a reason to; they are not among Points.
const (
	// ReplayOtherAnswer: a replay of a stored answer serves instead the
	// stored answer this process replayed last, when that was another
	// operation's (a response cache keyed by the wrong thing).
	ReplayOtherAnswer = "mutant.api.replay-other-answer"
)

// Mutations lists every mutation point.
func Mutations() []string { return []string{ReplayOtherAnswer} }

// Injector decides, at each named point, whether the process dies there.
// A nil *Injector never fires.
type Injector struct {
	mu   sync.Mutex
	odds map[string]float64
	rng  *rand.Rand
	die  func(point string)
}

// FromEnv reads IDEMGATE_FAULTS, a comma-separated list of point=odds
// (odds between 0 and 1 that a pass through the point kills the process),
// for example "api.after-claim-commit=0.01,projector.in-tx=0.005". It
// returns nil when the variable is empty.
func FromEnv(getenv func(string) string) (*Injector, error) {
	spec := strings.TrimSpace(getenv("IDEMGATE_FAULTS"))
	if spec == "" {
		return nil, nil
	}
	known := map[string]bool{}
	for _, p := range append(Points(), Mutations()...) {
		known[p] = true
	}
	in := &Injector{odds: map[string]float64{}, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), die: kill}
	for _, item := range strings.Split(spec, ",") {
		name, odds, ok := strings.Cut(strings.TrimSpace(item), "=")
		p, err := strconv.ParseFloat(odds, 64)
		if !ok || err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("IDEMGATE_FAULTS: %q is not point=odds with odds in [0,1]", item)
		}
		if !known[name] {
			return nil, fmt.Errorf("IDEMGATE_FAULTS: unknown fault point %q (known: %s)", name, strings.Join(Points(), ", "))
		}
		in.odds[name] = p
	}
	return in, nil
}

// WithDeath returns an injector that fires at each point with the given
// odds and calls die there instead of killing the process: a test in the
// process stands for the death (die must not return, as a death would
// not: runtime.Goexit ends the goroutine that passed the point).
func WithDeath(odds map[string]float64, die func(point string)) *Injector {
	return &Injector{odds: odds, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), die: die}
}

// Hit passes through a point; the process may die there.
func (in *Injector) Hit(point string) {
	if in.Fires(point) {
		in.die(point)
	}
}

// Fires passes through a point and says whether it fires; a mutation
// point's caller then misbehaves (Mutations).
func (in *Injector) Fires(point string) bool {
	if in == nil {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	p := in.odds[point]
	return p > 0 && in.rng.Float64() < p
}

// kill ends the process at once, as kill -9 does: no deferred function,
// no flush, no graceful shutdown.
func kill(point string) {
	fmt.Fprintf(os.Stderr, "fault: dying at %s\n", point)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
