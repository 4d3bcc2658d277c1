//! Timelines of a run: what each shard (and each offload thread) did, and when, written as a
//! Chrome trace-event file that Perfetto and `chrome://tracing` open.
//!
//! Tracing is off unless asked for (`Builder::trace`, `PipelineBuilder::trace`). Then each
//! thread appends to its own buffer — a span per loop turn that ran tasks, a span per idle period
//! (spin and park), an instant per batch handed to a ring and per wake sent to another shard —
//! with no locking, and hands the buffer back when it ends. Times are nanoseconds since a shared
//! epoch.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::time::Instant;

/// Spans a thread keeps before it counts the rest as dropped (about 40 MB of JSON).
const MAX_SPANS: usize = 500_000;

/// One span (or, with `dur_ns == 0` and `instant`, one point) on a thread's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// What the thread did: `tasks`, `idle`, `handoff`, `wake`, `job`.
    pub name: &'static str,
    /// Start, ns since the trace's epoch.
    pub start_ns: u64,
    /// Length, ns.
    pub dur_ns: u64,
    /// How many things it covers (tasks polled in a turn, items in a hand-off), or the shard a
    /// wake went to.
    pub count: u64,
    /// A point in time rather than a span.
    pub instant: bool,
}

/// One thread's timeline.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// The thread (`shard-0`, `offload-1`).
    pub name: String,
    /// In time order.
    pub spans: Vec<Span>,
    /// Spans not kept once the buffer was full.
    pub dropped: u64,
}

/// A thread's buffer while it runs.
#[derive(Debug)]
pub(crate) struct TraceBuf {
    epoch: Instant,
    track: Track,
}

impl TraceBuf {
    pub(crate) fn new(name: String, epoch: Instant) -> Self {
        Self { epoch, track: Track { name, spans: Vec::new(), dropped: 0 } }
    }

    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&mut self, span: Span) {
        if self.track.spans.len() < MAX_SPANS {
            self.track.spans.push(span);
        } else {
            self.track.dropped += 1;
        }
    }

    /// Records `name` from `start` to `end`.
    pub(crate) fn span(&mut self, name: &'static str, start: Instant, end: Instant, count: u64) {
        let (s, e) = (self.ns(start), self.ns(end));
        self.push(Span { name, start_ns: s, dur_ns: e.saturating_sub(s), count, instant: false });
    }

    /// Records a point event.
    pub(crate) fn instant(&mut self, name: &'static str, at: Instant, count: u64) {
        let s = self.ns(at);
        self.push(Span { name, start_ns: s, dur_ns: 0, count, instant: true });
    }

    pub(crate) fn finish(self) -> Track {
        self.track
    }
}

/// A Chrome trace-event JSON document: one process per group (a run), one thread per track.
pub fn chrome_json(groups: &[(String, Vec<Track>)]) -> String {
    let mut out = String::from("{\"traceEvents\":[\n");
    let mut first = true;
    let mut event = |out: &mut String, body: String| {
        if !first {
            out.push_str(",\n");
        }
        first = false;
        out.push_str(&body);
    };
    for (pid, (group, tracks)) in groups.iter().enumerate() {
        let pid = pid + 1;
        event(
            &mut out,
            format!(r#"{{"name":"process_name","ph":"M","pid":{pid},"args":{{"name":{}}}}}"#, quote(group)),
        );
        for (tid, track) in tracks.iter().enumerate() {
            event(
                &mut out,
                format!(
                    r#"{{"name":"thread_name","ph":"M","pid":{pid},"tid":{tid},"args":{{"name":{}}}}}"#,
                    quote(&track.name)
                ),
            );
            for s in &track.spans {
                let ts = s.start_ns as f64 / 1000.0;
                let mut e = format!(r#"{{"name":"{}","pid":{pid},"tid":{tid},"ts":{ts:.3}"#, s.name);
                if s.instant {
                    let _ = write!(e, r#","ph":"i","s":"t","args":{{"to":{}}}}}"#, s.count);
                } else {
                    let _ =
                        write!(e, r#","ph":"X","dur":{:.3},"args":{{"n":{}}}}}"#, s.dur_ns as f64 / 1000.0, s.count);
                }
                event(&mut out, e);
            }
        }
    }
    out.push_str("\n]}\n");
    out
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn spans_and_instants_come_out_as_chrome_events() {
        let epoch = Instant::now();
        let mut b = TraceBuf::new("shard-0".into(), epoch);
        b.span("tasks", epoch + Duration::from_micros(10), epoch + Duration::from_micros(15), 3);
        b.instant("wake", epoch + Duration::from_micros(20), 1);
        let json = chrome_json(&[("sharded \"#1\"".into(), vec![b.finish()])]);
        assert!(
            json.contains(r#""name":"tasks","pid":1,"tid":0,"ts":10.000,"ph":"X","dur":5.000,"args":{"n":3}"#),
            "{json}"
        );
        assert!(json.contains(r#""name":"wake","pid":1,"tid":0,"ts":20.000,"ph":"i","s":"t""#), "{json}");
        assert!(json.contains(r##""args":{"name":"sharded \"#1\""}"##), "names are escaped: {json}");
    }
}
