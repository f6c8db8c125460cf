// Package hostile holds the tests of issue 9: hostile clients (slow
// bodies, idle connections, huge numbers, odd headers) and sick backends
// (a hung or stopped database, a broker gone, file handles exhausted),
// each run against idemgate's real processes on a real PostgreSQL and a
// real Kafka broker (kfake when KAFKA_BROKERS is unset). RELIABILITY.md
// reports what they observe. The package has no code of its own.
package hostile
