//! Arbitrary input sequences for one member's cluster core: messages from
//! members and non-members, links up and down, writes and time, in any
//! order. The core must never panic, and must apply entries in order.

#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use redhac_membership::{
    Ack, Append, AppendReply, Autopilot, NodeConfig, Entry, Input, LogId, Membership, Message, Node, Op, Output, PeerHello, SnapshotChunk, Timing,
};

/// Reads the fuzzer's bytes as small numbers.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn small(&mut self) -> Option<u64> {
        self.u8().map(|b| u64::from(b % 16))
    }
    fn id(&mut self) -> Option<LogId> {
        Some(LogId::new(self.small()?, self.small()?))
    }
    fn ms(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(u64::from(self.u8()?) * 8))
    }
    fn op(&mut self) -> Option<Arc<Op>> {
        let key = format!("k{}", self.small()?);
        Some(Arc::new(match self.u8()? % 5 {
            0 => Op::Put { cache: "c".into(), key, value: vec![self.u8()?], ttl_ms: None, schema: None },
            1 => Op::Delete { cache: "c".into(), key },
            2 => Op::Clear { cache: "c".into() },
            3 => Op::Membership(self.membership()?),
            _ => Op::Noop,
        }))
    }
    /// Voters and learners among members 0..5, by two bitmasks (a valid
    /// membership, or the static three).
    fn membership(&mut self) -> Option<Membership> {
        let (v, l) = (self.u8()?, self.u8()?);
        let ids = |mask: u8| (0..5u32).filter(move |i| mask & (1 << i) != 0);
        Some(Membership::new(ids(v), ids(l & !v)).unwrap_or_else(|_| Membership::voters_only(3)))
    }
    fn ack(&mut self) -> Option<Ack> {
        Some([Ack::None, Ack::Leader, Ack::Quorum, Ack::All][usize::from(self.u8()? % 4)])
    }
    fn message(&mut self) -> Option<Message> {
        let term = self.small()?;
        Some(match self.u8()? % 15 {
            0 => Message::PreVote { term, last: self.id()?, config: self.small()?, cluster: self.small()? % 3, first: (0..self.small()? % 4).map(|_| self.small().map(|v| v as u32 % 6)).collect::<Option<_>>()? },
            1 => Message::PreVoteReply { term, granted: self.u8()? % 2 == 0 },
            2 => Message::Vote { term, last: self.id()?, transfer: self.u8()? % 2 == 0, config: self.small()?, cluster: self.small()? % 3 },
            3 => Message::VoteReply { term, granted: self.u8()? % 2 == 0 },
            4 => {
                let prev = self.id()?;
                let n = self.small()? % 4;
                let mut entries = Vec::new();
                for i in 0..n {
                    entries.push(Entry { id: LogId::new(self.small()?, prev.index + 1 + i), op: self.op()?, origin: None, request: None });
                }
                Message::Append(Append {
                    term,
                    prev,
                    entries,
                    commit: self.small()?,
                    stamp: self.ms()?,
                    echo: if self.u8()? % 2 == 0 { Some(self.ms()?) } else { None },
                    lease: self.u8()? % 2 == 0,
                })
            }
            5 => Message::AppendReply(AppendReply {
                term,
                ok: self.u8()? % 2 == 0,
                last: self.small()?,
                applied: self.small()?,
                needs_snapshot: self.u8()? % 2 == 0,
                leaving: self.u8()? % 2 == 0,
                stamp: self.ms()?,
                own: self.ms()?,
                batch: self.u8()? % 2 == 0,
            }),
            6 => Message::Snapshot(SnapshotChunk {
                term,
                last: self.id()?,
                seq: u64::from(self.u8()? % 3),
                end: (self.u8()? % 2 == 0).then_some(self.small()?),
                data: Arc::new(vec![self.u8()?]),
                membership: if self.u8()? % 2 == 0 { Some((self.small()?, Arc::new(self.membership()?))) } else { None },
            }),
            7 => Message::Forward { id: self.small()?, op: self.op()?, ack: self.ack()? },
            8 => Message::Accepted { id: self.small()?, at: self.id()? },
            9 => Message::Refused { id: self.small()? },
            10 => Message::AwaitAll { id: self.small()?, index: self.small()? },
            11 => Message::AllDone { id: self.small()?, index: self.small()? },
            12 => Message::TimeoutNow { term, stays: self.u8()? % 2 == 0 },
            13 => Message::Leaving { term },
            _ => Message::Removed { term },
        })
    }
    fn input(&mut self) -> Option<Input> {
        let peer = u32::from(self.u8()? % 4);
        Some(match self.u8()? % 8 {
            0 => Input::Tick,
            1 => Input::Connected { peer, hello: PeerHello { term: self.small()?, last: self.id()?, incarnation: self.small()?, floor: self.small()? } },
            2 => Input::Disconnected { peer },
            3 | 4 => Input::Receive { from: peer, msg: self.message()? },
            5 => Input::Propose { id: self.small()?, op: self.op()?, ack: self.ack()?, deadline: self.ms()? },
            6 => Input::Discovered { peers: usize::from(self.u8()? % 5) },
            _ => Input::StepDown,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let mut config = NodeConfig::new(1, 3, Timing::new(Duration::from_secs(1)), 3);
    // Half the inputs run the leader's autopilot (the dynamic mode), half
    // of those starting in no cluster (the bootstrap).
    let mode = bytes.u8().unwrap_or(0);
    if mode % 2 == 1 {
        config.autopilot = Some(Autopilot::new(3, Duration::from_secs(1)));
        if mode % 4 == 3 {
            config.bootstrap_expect = Some(3);
        }
    }
    let mut node = Node::new(config, Duration::ZERO);
    let mut now = Duration::ZERO;
    let mut applied = 0;
    while let (Some(advance), Some(input)) = (bytes.ms(), bytes.input()) {
        now += advance;
        let trace = std::env::var_os("CORE_STEP_TRACE").is_some();
        if trace {
            eprintln!("{now:?} <- {input:?}");
        }
        let mut rewound = false;
        for out in node.step(now, input) {
            if trace {
                eprintln!("    -> {out:?}");
            }
            match out {
                // A truncation of applied entries invalidates their keys and
                // applies again from there.
                Output::InvalidateKeys(_) | Output::InvalidateAll => rewound = true,
                Output::Apply(e) => {
                    if rewound {
                        assert!(e.id.index <= applied + 1, "entries apply in order");
                    } else {
                        assert_eq!(e.id.index, applied + 1, "entries apply in order");
                    }
                    rewound = false;
                    applied = e.id.index;
                }
                Output::InstallChunk { last, done: true, .. } => applied = last.index,
                _ => {}
            }
        }
        let s = node.status();
        applied = s.applied;
        assert!(s.applied <= s.commit && s.commit <= s.last.index, "{s:?}");
    }
});
