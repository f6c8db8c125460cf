// Package netfault holds the network-fault tests (issue 19): a toxiproxy
// (testenv.NetFault) between idemgate's roles and a backend, adding
// latency, cutting the link (a partition) or making every connection hang
// half-open, while clients keep sending commands; the tests check the
// promises that must survive: answers within the deadline, no 202 for an
// unclaimed command, every accepted command applied exactly once and its
// result published, no role exiting. Every test runs processes and is
// skipped with -short. RELIABILITY.md records their figures.
package netfault
