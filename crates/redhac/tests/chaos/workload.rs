//! Clients that drive the node API during the faults and record every
//! operation for the checker: each member gets a client that writes unique
//! values (at Quorum and All, sometimes deletes) and reads, one operation at
//! a time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::checker::{Ack, Event, Op, Outcome};
use crate::http;

const KEYS: usize = 8;
/// Every key and value starts with this, so that the members' logs can be
/// searched for them: no log line may print a key or a value.
pub(crate) const SENTINEL: &str = "sentinel";

fn key(k: usize) -> String {
    format!("{SENTINEL}-key{k}")
}
/// Longer than the node's write timeout, so a slow write ends as the node
/// says, not as the client gives up.
const DEADLINE: Duration = Duration::from_secs(12);

/// The shared record of a run.
#[derive(Debug)]
pub(crate) struct Recorder {
    t0: Instant,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            t0: Instant::now(),
            events: Mutex::new(Vec::new()),
        })
    }

    /// Time since the start of the run.
    pub(crate) fn at(&self) -> Duration {
        self.t0.elapsed()
    }

    fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }

    pub(crate) fn history(&self) -> Vec<Event> {
        let mut h = self.events.lock().unwrap().clone();
        h.sort_by_key(|e| e.start);
        h
    }
}

/// What a write's answer means for the checker.
fn outcome(answer: &http::Answer) -> Outcome {
    match answer {
        Ok((200, _)) => Outcome::Ok,
        // No quorum: refused before the write was proposed.
        Ok((503, body)) if body.contains("no quorum") => Outcome::Refused,
        _ => Outcome::Unknown,
    }
}

/// One client against member `node` (its HTTP address `addr`) until `stop`.
pub(crate) async fn client(
    rec: Arc<Recorder>,
    node: usize,
    addr: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut seq = 0u64;
    while !*stop.borrow_and_update() {
        seq += 1;
        let key = key(seq as usize * 7 % KEYS + node % 2);
        let start = rec.at();
        let op = match seq % 6 {
            0 | 1 => {
                let value = format!("{SENTINEL}-value-n{node}-{seq}");
                let ack = if seq.is_multiple_of(12) {
                    Ack::All
                } else {
                    Ack::Quorum
                };
                let level = if ack == Ack::All { "all" } else { "quorum" };
                let path = format!("/v1/cache/default/{key}?ack={level}");
                let answer = http::request(&addr, "PUT", &path, &value, DEADLINE).await;
                Op::Write {
                    key,
                    value: Some(value),
                    ack,
                    outcome: outcome(&answer),
                }
            }
            2 if seq.is_multiple_of(5) => {
                let path = format!("/v1/cache/default/{key}?ack=all");
                let answer = http::request(&addr, "DELETE", &path, "", DEADLINE).await;
                Op::Write {
                    key,
                    value: None,
                    ack: Ack::All,
                    outcome: outcome(&answer),
                }
            }
            _ => {
                let path = format!("/v1/cache/default/{key}");
                let seen = match http::request(&addr, "GET", &path, "", DEADLINE).await {
                    Ok((200, v)) => Ok(Some(v)),
                    Ok((404, _)) => Ok(None),
                    Ok((code, body)) => Err(format!("{code} {body}")),
                    Err(e) => Err(e),
                };
                Op::Read { key, seen }
            }
        };
        let end = rec.at();
        rec.push(Event {
            node,
            start,
            end,
            op,
        });
        if end - start < Duration::from_millis(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Writes every key once from member `node` at All, recorded like the
/// clients' writes: after a release that changed the value type, the keys
/// last written by the old release are misses on the new one, and these
/// writes put a value of the new release under each.
pub(crate) async fn write_every_key(rec: &Recorder, node: usize, addr: &str) {
    for k in 0..=KEYS {
        let key = key(k);
        let value = format!("{SENTINEL}-value-final-{k}");
        let start = rec.at();
        let path = format!("/v1/cache/default/{key}?ack=all");
        let answer = http::request(addr, "PUT", &path, &value, DEADLINE).await;
        rec.push(Event {
            node,
            start,
            end: rec.at(),
            op: Op::Write {
                key,
                value: Some(value),
                ack: Ack::All,
                outcome: outcome(&answer),
            },
        });
    }
}

/// Every key as each member serves it now.
pub(crate) async fn finals(addrs: &[String]) -> Vec<BTreeMap<String, Option<String>>> {
    let mut all = Vec::new();
    for addr in addrs {
        let mut seen = BTreeMap::new();
        for k in 0..=KEYS {
            let key = key(k);
            let path = format!("/v1/cache/default/{key}");
            let value = match http::request(addr, "GET", &path, "", DEADLINE).await {
                Ok((200, v)) => Some(v),
                _ => None,
            };
            seen.insert(key, value);
        }
        all.push(seen);
    }
    all
}
