//! The trace of a replayed seed: every input and output of every node,
//! one line each (`REDHAC_SIM_SEED`).

use redhac_membership::{Append, Input, MemberId, Message, Output};

use super::World;

impl World {
    /// `id` is about to receive `input`.
    pub(super) fn trace_input(&self, id: MemberId, input: &Input) {
        if self.opts.trace {
            self.trace_line(id, &format!("<- {}", describe_input(input)));
        }
    }

    /// `id` told its runtime `out`.
    pub(super) fn trace_output(&self, id: MemberId, out: &Output) {
        if self.opts.trace {
            self.trace_line(id, &format!("-> {}", describe_output(out)));
        }
    }

    /// `id` crashed.
    pub(super) fn trace_crash(&self, id: MemberId) {
        if self.opts.trace {
            self.trace_line(id, "CRASH");
        }
    }

    fn trace_line(&self, id: MemberId, what: &str) {
        println!("{:>10.3}ms n{id} {what}", self.now.as_secs_f64() * 1e3);
    }
}

fn describe_input(i: &Input) -> String {
    match i {
        Input::Receive { from, msg } => format!("from n{from}: {}", short(msg)),
        other => format!("{other:?}"),
    }
}

fn describe_output(o: &Output) -> String {
    match o {
        Output::Send { to, msg } => format!("to n{to}: {}", short(msg)),
        Output::Apply(e) => format!("apply {} {:?}", e.id, e.op),
        other => format!("{other:?}"),
    }
}

fn short(m: &Message) -> String {
    match m {
        Message::Append(Append {
            term,
            prev,
            entries,
            commit,
            lease,
            ..
        }) => format!(
            "append t{term} prev {prev} n={} commit {commit} lease {lease}",
            entries.len()
        ),
        Message::Snapshot(c) => format!(
            "snapshot t{} last {} chunk {} end {:?}",
            c.term, c.last, c.seq, c.end
        ),
        other => format!("{other:?}"),
    }
}
