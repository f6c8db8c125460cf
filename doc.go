// Package idemgate is the idempotency domain: operations (a POST route, the
// validation of its body, the applier that carries out its commands, the
// retention of its keys), the registry that holds them, and the commands,
// claims and responses that flow through the pipeline.
//
// The pipeline itself lives in the packages named after its steps:
// command (the HTTP API: key, fingerprint, claim, 202 or replay), events
// (the Kafka envelope), consumer (the consumer-group runner), projector
// (dedup, apply, outbox) and store (every statement on the core tables).
// None of them knows any particular operation: they take a Registry.
//
// A program protects its own command by registering a Module:
//
//	reg, err := idemgate.NewRegistry(payments.Module(payments.Config{}), myModule)
//
// and handing the registry to the roles (package roles). The package's
// Example runs it.
package idemgate
