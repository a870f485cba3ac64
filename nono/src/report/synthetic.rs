//! A made-up session for measuring the report page: the page-size unit
//! test, the browser test and `cargo xtask bench --only report` build the
//! same one. It reads no database and writes no file.

use super::{Aggregator, Header, Rules, Sensitive, SessionReport};
use crate::event::{Access, DenyBy, Event, Op, Outcome};

/// `events` opens and execs spread evenly over `secs` seconds, by 2,000
/// processes, over about 300k distinct paths under /home/u/project (so the
/// tree and path caps are both reached at 1M events), one in 5,000 denied.
#[must_use]
pub fn session(events: i64, secs: i64, header: Header) -> SessionReport {
    let mut agg = Aggregator::new(0, secs * 1_000_000_000);
    let mut e = Event {
        time_ns: 0,
        pid: 0,
        tid: 0,
        ppid: 1,
        uid: 1000,
        comm: "agent".to_owned(),
        exe: Some("/usr/bin/agent".to_owned()),
        op: Op::Open,
        path: None,
        path2: None,
        access: Access::default(),
        arg: 0,
        file_type: 0,
        outcome: Outcome::Ok,
        net: None,
        incomplete: false,
    };
    let step = secs * 1_000_000_000 / events.max(1);
    for i in 0..events {
        e.time_ns = i * step;
        e.pid = (i % 2_000) as u32 + 100;
        e.tid = e.pid;
        e.op = if i % 7 == 0 { Op::Exec } else { Op::Open };
        e.outcome = if i % 5_000 == 0 { Outcome::Denied { errno: 13, by: DenyBy::Computed } } else { Outcome::Ok };
        e.path = Some(format!("/home/u/project/dir{}/sub{}/file{}.rs", i % 97, i % 1_009, i % 300_000));
        agg.add(&e);
    }
    agg.finish(header, Rules::default(), &Sensitive::default(), &["agent".to_owned()])
}
