//! The process's resident memory and CPU time, read from `/proc/self` at scrape time. On other
//! systems (or when `/proc` cannot be read) there is no reading and the two metrics are left out
//! of the scrape rather than reported as zero.

/// What one reading found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessReading {
    pub resident_bytes: u64,
    /// User plus system CPU time.
    pub cpu_seconds: f64,
}

/// Reads the process's memory and CPU time; `None` off Linux or when `/proc` cannot be read.
pub fn read() -> Option<ProcessReading> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let ticks = rustix::param::clock_ticks_per_second();
        Some(ProcessReading {
            resident_bytes: resident_kb(&status)? * 1024,
            cpu_seconds: cpu_ticks(&stat)? as f64 / ticks.max(1) as f64,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// `VmRSS` of `/proc/self/status`, in kB.
fn resident_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` of `/proc/self/stat` (fields 14 and 15), in clock ticks. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (agent yard (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(175));
        assert_eq!(cpu_ticks("garbage"), None);
        let status = "Name:\tagentyard\nVmPeak:\t  200 kB\nVmRSS:\t   5120 kB\nThreads:\t9\n";
        assert_eq!(resident_kb(status), Some(5120));
        assert_eq!(resident_kb("Name:\tx\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let r = read().expect("a reading on Linux");
        assert!(r.resident_bytes > 1024 * 1024, "{r:?}");
        assert!(r.cpu_seconds >= 0.0);
    }
}
