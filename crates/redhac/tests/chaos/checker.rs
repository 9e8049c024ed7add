//! Checks a recorded history of cache operations against docs/architecture.md §3's
//! guarantees.
//!
//! Every write carries a unique value, so a read names the write it saw.
//! "Older" is real-time order: write A is older than write B when A ended
//! before B began; concurrent writes may land in either order. A miss is
//! never stale (a member that is not serving answers reads as misses), but a
//! final miss where an acknowledged put should stand is a lost write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Time since the start of the run.
pub(crate) type At = Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    Quorum,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Acknowledged at its level.
    Ok,
    /// Refused for lack of quorum: it did not apply.
    Refused,
    /// Timed out or failed in transit: it may have applied.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `value: None` is a delete.
    Write {
        key: String,
        value: Option<String>,
        ack: Ack,
        outcome: Outcome,
    },
    /// `seen: None` is a miss; `Err` a failed read (not checked).
    Read {
        key: String,
        seen: Result<Option<String>, String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) node: usize,
    pub(crate) start: At,
    pub(crate) end: At,
    pub(crate) op: Op,
}

/// A fault and how long it lasted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) name: String,
    pub(crate) start: At,
    pub(crate) end: At,
    /// Members cut off in a minority during the fault: they must refuse writes.
    pub(crate) minority: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A read returned a value no write wrote.
    Phantom { read: usize },
    /// A read returned a value older than a completed All write (or delete).
    StaleAfterAll { read: usize, newer: usize },
    /// A read returned a value older than a Quorum write completed more than L before it.
    StaleAfterQuorum { read: usize, newer: usize },
    /// A write was acknowledged by a member cut off in a minority.
    MinorityAck { write: usize, fault: String },
    /// After healing, a member holds a value older than an acknowledged write.
    Lost { key: String, node: usize },
    /// After healing, members disagree.
    Diverged { key: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) operations: usize,
    pub(crate) violations: Vec<Violation>,
    /// Largest gap between a completed newer write and a read that still saw an
    /// older value (allowed up to L after a Quorum write).
    pub(crate) max_staleness: Duration,
    /// Per fault, the longest time without a successful write during it.
    pub(crate) unavailability: Vec<(String, Duration)>,
}

/// The writer of each value, by index into the history.
fn writers(history: &[Event]) -> BTreeMap<(&str, &str), usize> {
    let mut by_value = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        if let Op::Write {
            key,
            value: Some(v),
            ..
        } = &e.op
        {
            by_value.insert((key.as_str(), v.as_str()), i);
        }
    }
    by_value
}

/// Writes to `key` that completed (acknowledged) strictly after `older` ended.
fn newer_acked<'a>(
    history: &'a [Event],
    key: &'a str,
    older_end: Option<At>,
) -> impl Iterator<Item = (usize, &'a Event, Ack)> + 'a {
    history
        .iter()
        .enumerate()
        .filter_map(move |(i, e)| match &e.op {
            Op::Write {
                key: k,
                ack,
                outcome: Outcome::Ok,
                ..
            } if k == key && older_end.is_none_or(|end| end < e.start) => Some((i, e, *ack)),
            _ => None,
        })
}

/// Checks reads and writes; `lease` is the read lease L; `finals` are the
/// reads made on every member after healing, per member, per key.
pub(crate) fn check(
    history: &[Event],
    faults: &[Fault],
    lease: Duration,
    finals: &[BTreeMap<String, Option<String>>],
) -> Report {
    let mut report = Report {
        operations: history.len(),
        ..Report::default()
    };
    let writer = writers(history);
    for (i, e) in history.iter().enumerate() {
        let Op::Read {
            key,
            seen: Ok(Some(v)),
        } = &e.op
        else {
            continue;
        };
        let Some(&w) = writer.get(&(key.as_str(), v.as_str())) else {
            report.violations.push(Violation::Phantom { read: i });
            continue;
        };
        if matches!(
            history[w].op,
            Op::Write {
                outcome: Outcome::Unknown,
                ..
            }
        ) {
            // Timed out or lost in transit: it may still apply at any time
            // after it started (a forwarded write the leader ordered late),
            // so no later write is known to be newer than it.
            continue;
        }
        for (n, newer, ack) in newer_acked(history, key, Some(history[w].end)) {
            if newer.end >= e.start {
                continue;
            }
            let staleness = e.start - newer.end;
            match ack {
                Ack::All => report
                    .violations
                    .push(Violation::StaleAfterAll { read: i, newer: n }),
                Ack::Quorum if staleness > lease => {
                    report
                        .violations
                        .push(Violation::StaleAfterQuorum { read: i, newer: n });
                }
                Ack::Quorum => {}
            }
            report.max_staleness = report.max_staleness.max(staleness);
        }
    }
    for fault in faults {
        for (i, e) in history.iter().enumerate() {
            let acked = matches!(
                e.op,
                Op::Write {
                    outcome: Outcome::Ok,
                    ..
                }
            );
            if acked
                && fault.minority.contains(&e.node)
                && e.start >= fault.start
                && e.end <= fault.end
            {
                report.violations.push(Violation::MinorityAck {
                    write: i,
                    fault: fault.name.clone(),
                });
            }
        }
        report
            .unavailability
            .push((fault.name.clone(), longest_gap(history, fault)));
    }
    check_finals(history, &writer, finals, &mut report);
    report
}

fn check_finals(
    history: &[Event],
    writer: &BTreeMap<(&str, &str), usize>,
    finals: &[BTreeMap<String, Option<String>>],
    report: &mut Report,
) {
    let keys: BTreeSet<&String> = finals.iter().flat_map(|f| f.keys()).collect();
    for key in keys {
        let seen: Vec<Option<&Option<String>>> = finals.iter().map(|f| f.get(key)).collect();
        if seen.windows(2).any(|w| w[0] != w[1]) {
            report
                .violations
                .push(Violation::Diverged { key: key.clone() });
        }
        for (node, value) in seen.iter().enumerate() {
            let end = match value {
                Some(Some(v)) => match writer.get(&(key.as_str(), v.as_str())) {
                    Some(&w) => Some(history[w].end),
                    None => {
                        report.violations.push(Violation::Lost {
                            key: key.clone(),
                            node,
                        });
                        continue;
                    }
                },
                // A miss: lost if an acknowledged put is not followed by any
                // write (a delete, or a write that may have applied) that
                // could explain it.
                _ => {
                    let last_put = newer_acked(history, key, None)
                        .filter(|(_, e, _)| matches!(&e.op, Op::Write { value: Some(_), .. }))
                        .map(|(_, e, _)| e.end)
                        .max();
                    let explained = last_put.is_none_or(|put_end| {
                        history.iter().any(|e| match &e.op {
                            Op::Write {
                                key: k,
                                value: None,
                                outcome,
                                ..
                            } => k == key && *outcome != Outcome::Refused && e.end >= put_end,
                            _ => false,
                        })
                    });
                    if !explained {
                        report.violations.push(Violation::Lost {
                            key: key.clone(),
                            node,
                        });
                    }
                    continue;
                }
            };
            if newer_acked(history, key, end).next().is_some() {
                report.violations.push(Violation::Lost {
                    key: key.clone(),
                    node,
                });
            }
        }
    }
}

/// The longest stretch inside the fault with no write completing successfully.
fn longest_gap(history: &[Event], fault: &Fault) -> Duration {
    let mut ends: Vec<At> = history
        .iter()
        .filter(|e| {
            matches!(
                e.op,
                Op::Write {
                    outcome: Outcome::Ok,
                    ..
                }
            ) && e.end > fault.start
                && e.end <= fault.end
        })
        .map(|e| e.end)
        .collect();
    ends.sort();
    let mut last = fault.start;
    let mut gap = Duration::ZERO;
    for end in ends.into_iter().chain([fault.end]) {
        gap = gap.max(end - last);
        last = end;
    }
    gap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> At {
        Duration::from_millis(n)
    }

    fn write(
        node: usize,
        start: u64,
        end: u64,
        key: &str,
        value: Option<&str>,
        ack: Ack,
        outcome: Outcome,
    ) -> Event {
        Event {
            node,
            start: ms(start),
            end: ms(end),
            op: Op::Write {
                key: key.into(),
                value: value.map(Into::into),
                ack,
                outcome,
            },
        }
    }

    fn read(node: usize, start: u64, key: &str, seen: Option<&str>) -> Event {
        Event {
            node,
            start: ms(start),
            end: ms(start + 1),
            op: Op::Read {
                key: key.into(),
                seen: Ok(seen.map(Into::into)),
            },
        }
    }

    const L: Duration = Duration::from_millis(100);

    fn finals(n: usize, pairs: &[(&str, Option<&str>)]) -> Vec<BTreeMap<String, Option<String>>> {
        let one: BTreeMap<_, _> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect();
        vec![one; n]
    }

    #[test]
    fn a_clean_history_passes() {
        let h = vec![
            write(0, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            read(1, 20, "k", Some("a")),
            write(1, 30, 40, "k", Some("b"), Ack::All, Outcome::Ok),
            read(2, 50, "k", Some("b")),
            read(0, 50, "k", None),
        ];
        let r = check(&h, &[], L, &finals(3, &[("k", Some("b"))]));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.operations, 5);
    }

    #[test]
    fn a_stale_read_after_all_is_caught() {
        let h = vec![
            write(0, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            write(0, 20, 30, "k", Some("b"), Ack::All, Outcome::Ok),
            read(2, 31, "k", Some("a")),
        ];
        let r = check(&h, &[], L, &[]);
        assert_eq!(
            r.violations,
            vec![Violation::StaleAfterAll { read: 2, newer: 1 }]
        );
    }

    #[test]
    fn a_write_of_unknown_outcome_may_land_after_a_later_all_write() {
        let h = vec![
            write(1, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Unknown),
            write(0, 20, 30, "k", Some("b"), Ack::All, Outcome::Ok),
            read(2, 40, "k", Some("a")),
        ];
        assert!(check(&h, &[], L, &[]).violations.is_empty());
        // Acknowledged, the same history is a stale read.
        let mut acked = h.clone();
        acked[0] = write(1, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok);
        assert_eq!(
            check(&acked, &[], L, &[]).violations,
            vec![Violation::StaleAfterAll { read: 2, newer: 1 }]
        );
    }

    #[test]
    fn a_read_concurrent_with_the_newer_write_is_fine() {
        let h = vec![
            write(0, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            write(0, 20, 30, "k", Some("b"), Ack::All, Outcome::Ok),
            read(2, 25, "k", Some("a")),
        ];
        assert!(check(&h, &[], L, &[]).violations.is_empty());
    }

    #[test]
    fn quorum_staleness_is_allowed_only_within_the_lease() {
        let h = vec![
            write(0, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            write(0, 20, 30, "k", Some("b"), Ack::Quorum, Outcome::Ok),
            read(2, 100, "k", Some("a")),
            read(2, 200, "k", Some("a")),
        ];
        let r = check(&h, &[], L, &[]);
        assert_eq!(
            r.violations,
            vec![Violation::StaleAfterQuorum { read: 3, newer: 1 }]
        );
        assert_eq!(r.max_staleness, ms(170));
    }

    #[test]
    fn deletes_count_as_newer_writes_and_phantoms_are_caught() {
        let h = vec![
            write(0, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            write(0, 20, 30, "k", None, Ack::All, Outcome::Ok),
            read(1, 40, "k", Some("a")),
            read(1, 40, "k", Some("never-written")),
        ];
        let r = check(&h, &[], L, &[]);
        assert_eq!(
            r.violations,
            vec![
                Violation::StaleAfterAll { read: 2, newer: 1 },
                Violation::Phantom { read: 3 }
            ]
        );
    }

    #[test]
    fn minority_acks_lost_writes_and_divergence_are_caught() {
        let h = vec![
            write(0, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            write(2, 110, 120, "k", Some("b"), Ack::Quorum, Outcome::Ok),
            write(2, 130, 140, "j", Some("x"), Ack::Quorum, Outcome::Refused),
        ];
        let fault = Fault {
            name: "partition".into(),
            start: ms(100),
            end: ms(200),
            minority: vec![2],
        };
        let mut fin = finals(3, &[("k", Some("a")), ("j", None)]);
        fin[1].insert("k".into(), None);
        let r = check(&h, &[fault], L, &fin);
        assert!(r.violations.contains(&Violation::MinorityAck {
            write: 1,
            fault: "partition".into()
        }));
        assert!(
            r.violations.contains(&Violation::Lost {
                key: "k".into(),
                node: 0
            }),
            "{:?}",
            r.violations
        );
        assert!(r.violations.contains(&Violation::Lost {
            key: "k".into(),
            node: 1
        }));
        assert!(
            r.violations
                .contains(&Violation::Diverged { key: "k".into() })
        );
        assert!(
            !r.violations
                .iter()
                .any(|v| matches!(v, Violation::Lost { key, .. } if key == "j")),
            "a refused write is not lost"
        );
    }

    #[test]
    fn a_final_miss_after_a_delete_or_a_maybe_delete_is_not_lost() {
        let h = vec![
            write(0, 0, 10, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            write(0, 20, 30, "k", None, Ack::Quorum, Outcome::Unknown),
        ];
        let r = check(&h, &[], L, &finals(3, &[("k", None)]));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }

    #[test]
    fn unavailability_is_the_longest_gap_inside_a_fault() {
        let h = vec![
            write(0, 0, 110, "k", Some("a"), Ack::Quorum, Outcome::Ok),
            write(0, 120, 400, "k", Some("b"), Ack::Quorum, Outcome::Ok),
            write(0, 400, 450, "k", Some("c"), Ack::Quorum, Outcome::Ok),
        ];
        let fault = Fault {
            name: "kill leader".into(),
            start: ms(100),
            end: ms(500),
            minority: vec![],
        };
        let r = check(&h, &[fault], L, &[]);
        assert_eq!(r.unavailability, vec![("kill leader".to_string(), ms(290))]);
    }
}
