package idemgate

import "time"

// DefaultRetention is how long a completed key is remembered when neither
// the deployment nor the operation says otherwise: a day, as Stripe
// keeps its keys (the IETF draft asks only for a published policy). It
// covers a client's retries through an outage of some hours while the
// claims table stays a day of traffic.
const DefaultRetention = 24 * time.Hour

// Retention is the one rule for how long an operation's completed keys are
// kept: the deployment's per-operation setting (ByOperation, by operation
// name), else the operation's own Retention, else the deployment's
// Default (DefaultRetention when 0).
type Retention struct {
	Default     time.Duration
	ByOperation map[string]time.Duration
}

// For is the retention of op's completed keys.
func (r Retention) For(op Operation) time.Duration {
	if d, ok := r.ByOperation[op.Name]; ok {
		return d
	}
	if op.Retention > 0 {
		return op.Retention
	}
	if r.Default > 0 {
		return r.Default
	}
	return DefaultRetention
}
