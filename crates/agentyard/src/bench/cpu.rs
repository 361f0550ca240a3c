//! CPU time of this bench process and of a self-started server, read from `/proc`, so every row
//! can say what one task cost each side: on a machine where both share the cores, the client's
//! share is part of every figure.

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`): 100 on every Linux architecture.
const TICKS_PER_S: f64 = 100.0;

/// User plus system CPU time of a process so far (`self` for this one), in clock ticks; `None`
/// where `/proc` cannot tell (not Linux, or the process is gone).
pub fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ticks(&stat)
}

/// `utime + stime` of a `/proc/<pid>/stat` line.
fn parse_ticks(stat: &str) -> Option<u64> {
    // Field 2, the command name, is in parentheses and may hold spaces and parentheses: the
    // fields are counted from its last `)`, field 3 first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU times at the start of a measured stretch.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    pub server: Option<u64>,
    pub bench: Option<u64>,
}

/// CPU time per item of a measured stretch, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuCost {
    pub server_us: Option<f64>,
    pub bench_us: Option<f64>,
}

impl CpuMark {
    /// What `items` cost from this mark to `now`: per item, in µs, to 0.1 µs.
    pub fn cost(self, now: CpuMark, items: u64) -> CpuCost {
        let per_item = |before: Option<u64>, after: Option<u64>| {
            let spent = after?.checked_sub(before?)?;
            (items > 0).then(|| (spent as f64 / TICKS_PER_S * 1e6 / items as f64 * 10.0).round() / 10.0)
        };
        CpuCost {
            server_us: per_item(self.server, now.server),
            bench_us: per_item(self.bench, now.bench),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_odd_command_names() {
        let line = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1380 0 0 0 731 129 0 0 20 0 7 0 1 1 1";
        assert_eq!(parse_ticks(line), Some(731 + 129));
        assert_eq!(parse_ticks("4242 (short) S 1"), None);
        assert_eq!(parse_ticks("no parenthesis at all"), None);
    }

    #[test]
    fn this_process_can_be_read_and_a_missing_one_cannot() {
        assert!(ticks("self").is_some());
        assert_eq!(ticks("4294967295"), None);
    }

    #[test]
    fn costs_are_per_item_and_left_out_when_unknown() {
        let before = CpuMark {
            server: Some(100),
            bench: None,
        };
        let after = CpuMark {
            server: Some(150),
            bench: Some(7),
        };
        // 50 ticks = 0.5 s over 10,000 items: 50 µs each.
        assert_eq!(
            before.cost(after, 10_000),
            CpuCost {
                server_us: Some(50.0),
                bench_us: None
            }
        );
        assert_eq!(before.cost(after, 0), CpuCost::default());
    }
}
