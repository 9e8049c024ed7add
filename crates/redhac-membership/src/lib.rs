//! Sans-IO cluster core of redhac.
//!
//! A deterministic state machine per member: member list and "who am I",
//! leader election, leader-ordered replication bookkeeping and health. It owns
//! no sockets, clocks or tasks; time and messages are inputs and the runtime
//! carries out its outputs, so the same code runs under tokio in production
//! and under a seeded simulated network in tests.
