// Package lab builds a small, disposable network for tests and for
// `ctwatch demo`: three network namespaces joined by veth pairs, a stub
// resolver behind a stateful firewall, an upstream DNS server that answers
// late on purpose, and an outside host that sends unsolicited packets.
//
//	outside ns            resolver ns                      upstream ns
//	 spoofer  ──veth──  [ruleset, conntrack]  ──veth──  DNS responder :53
//	          o2r   r2o    stub resolver     r2u   u2r
//
// Every address comes from 198.18.0.0/15 or fd00::/8 and lives only inside
// the namespaces the lab creates; none of its interfaces is ever in the
// caller's namespace, so no lab packet can leave. Each lab takes a slot
// that is unique among all labs on the machine (see slot.go), and derives
// its namespace names, interface names and addresses from it, so labs in
// parallel test processes never collide, and kernel LOG lines, which do
// not say which namespace wrote them, can be told apart by address.
//
// The lab records ground truth (see Truth): every answer and spoofed
// packet it sent, with the verdict a conntrack model predicts for it.
package lab
