//! CPU time of this bench process, of the self-started servers and of a local PostgreSQL, read
//! from `/proc`, so every row can say what one task cost each side: on a machine where they all
//! share the cores, each one's share is part of every figure.

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
    let [utime, stime, _, _] = parse_stat(stat)?.times;
    Some(utime + stime)
}

/// What the bench reads of a `/proc/<pid>/stat` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The parent process (field 4).
    pub ppid: u32,
    /// `utime`, `stime`, `cutime` and `cstime` (fields 14 to 17), in clock ticks: the process's
    /// own time and that of the children it waited for.
    pub times: [u64; 4],
}

/// Parses a `/proc/<pid>/stat` line.
pub fn parse_stat(stat: &str) -> Option<Stat> {
    // Field 2, the command name, is in parentheses and may hold spaces and parentheses: the
    // fields are counted from its last `)`, field 3 first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let ppid = fields.nth(1)?.parse().ok()?;
    let mut fields = fields.skip(9);
    let mut times = [0; 4];
    for t in &mut times {
        // The children's times are signed in the kernel's format, though never negative.
        *t = fields.next()?.parse::<i64>().ok()?.max(0) as u64;
    }
    Some(Stat { ppid, times })
}

/// CPU times at the start of a measured stretch.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    /// Every node of the workload together.
    pub server: Option<u64>,
    pub bench: Option<u64>,
    /// PostgreSQL's processes, with `--store postgres` on this machine.
    pub db: Option<u64>,
}

/// CPU time per item of a measured stretch, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuCost {
    pub server_us: Option<f64>,
    pub bench_us: Option<f64>,
    pub db_us: Option<f64>,
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
            db_us: per_item(self.db, now.db),
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
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 1,
                times: [731, 129, 0, 0]
            })
        );
        let reaped = "7 (postgres) S 2283 7 7 0 -1 4194304 1 2 0 0 24 381 8059 5807 20 0 1 0 3101 1";
        assert_eq!(
            parse_stat(reaped),
            Some(Stat {
                ppid: 2283,
                times: [24, 381, 8059, 5807]
            })
        );
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
            db: Some(10),
        };
        let after = CpuMark {
            server: Some(150),
            bench: Some(7),
            db: Some(13),
        };
        // 50 ticks = 0.5 s over 10,000 items: 50 µs each.
        assert_eq!(
            before.cost(after, 10_000),
            CpuCost {
                server_us: Some(50.0),
                bench_us: None,
                db_us: Some(3.0),
            }
        );
        assert_eq!(before.cost(after, 0), CpuCost::default());
    }
}
