//! The CPU time of a PostgreSQL running on this machine, read from `/proc`: the processes whose
//! command name or command line starts with `postgres`, narrowed down to the server of the bench's
//! database when it can be told (the postmaster above a connection of the bench's own), so that
//! another cluster on the machine is not counted.
//!
//! Each process counts its own time and that of the children it waited for: a backend that ended
//! (a closed connection) moves its time into the postmaster's, so the sum over the processes
//! never goes back and the difference of two readings is what PostgreSQL spent between them.

use crate::bench::cpu::parse_stat;

/// Which processes are the database's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgProcs {
    /// The postmaster with this pid and its children: the server the bench talks to.
    Server(u32),
    /// Every PostgreSQL process on the machine (the server could not be told).
    All,
}

/// Whether a process is one of PostgreSQL's: its command name (`comm`) or its command line
/// starts with `postgres` (the postmaster, `postgres: 15/main: checkpointer`, a backend, …).
fn is_postgres(comm: &str, cmdline: &[u8]) -> bool {
    comm.trim_end().starts_with("postgres") || cmdline.starts_with(b"postgres")
}

fn is_postgres_pid(pid: &str) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if is_postgres(&comm, b"") {
        return true;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    is_postgres(&comm, &cmdline)
}

/// The postmaster above `backend` (the pid a connection of the bench's own reports with
/// `pg_backend_pid()`, while it is open), when `/proc` shows both as PostgreSQL's.
pub fn postmaster_of(backend: u32) -> Option<u32> {
    let backend = backend.to_string();
    if !is_postgres_pid(&backend) {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).ok()?;
    let postmaster = parse_stat(&stat)?.ppid;
    is_postgres_pid(&postmaster.to_string()).then_some(postmaster)
}

/// Whether a PostgreSQL process belongs to `which`, given its pid and parent.
fn belongs(which: PgProcs, pid: u32, ppid: u32) -> bool {
    match which {
        PgProcs::Server(postmaster) => pid == postmaster || ppid == postmaster,
        PgProcs::All => true,
    }
}

/// CPU time of the database's processes so far, in clock ticks, with how many there are; `None`
/// when `/proc` shows none (the server stopped, or `/proc` hides other users' processes).
pub fn ticks(which: PgProcs) -> Option<(u64, usize)> {
    let mut total = 0;
    let mut found = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if !is_postgres_pid(pid) {
            continue;
        }
        // A process that ended since it was listed is counted by its parent.
        let Some(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat))
        else {
            continue;
        };
        if belongs(which, pid.parse().unwrap_or(0), stat.ppid) {
            total += stat.times.iter().sum::<u64>();
            found += 1;
        }
    }
    (found > 0).then_some((total, found))
}

/// Which processes to read, and how the report describes them, given whether the database is on
/// this machine (the reason when not) and the postmaster above the bench's connection; the
/// reason when the database's CPU time cannot be read.
pub fn choose(local: Result<(), String>, postmaster: Option<u32>) -> Result<(PgProcs, String), String> {
    local?;
    let which = postmaster.map_or(PgProcs::All, PgProcs::Server);
    let Some((_, found)) = ticks(which) else {
        return Err("no PostgreSQL process can be read in /proc".to_owned());
    };
    Ok((which, describe(which, found)))
}

fn describe(which: PgProcs, found: usize) -> String {
    match which {
        PgProcs::Server(postmaster) => format!(
            "the database's PostgreSQL server from /proc: postmaster {postmaster} and its children ({found} processes at the start)"
        ),
        PgProcs::All => format!(
            "every PostgreSQL process of this machine from /proc ({found} at the start; the database's own server could \
             not be told)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_processes_are_told_by_name_or_command_line() {
        assert!(is_postgres("postgres\n", b""));
        assert!(is_postgres("x", b"postgres: 15/main: walwriter "));
        assert!(!is_postgres("agentyard\n", b"/usr/bin/agentyard\0serve"));
        assert!(!is_postgres("psql\n", b"psql\0-h\0localhost"));
    }

    #[test]
    fn a_server_is_its_postmaster_and_the_postmasters_children() {
        let server = PgProcs::Server(2283);
        assert!(belongs(server, 2283, 1));
        assert!(belongs(server, 4242, 2283));
        assert!(!belongs(server, 5151, 5150), "another cluster's backend");
        assert!(belongs(PgProcs::All, 5151, 5150));
    }

    #[test]
    fn the_database_cpu_is_read_only_from_a_local_database() {
        let why = "the database is on db.internal, not this machine".to_owned();
        assert_eq!(choose(Err(why.clone()), None).unwrap_err(), why);
        // No process has pid 0: a server that cannot be found cannot be read.
        let err = choose(Ok(()), Some(0)).unwrap_err();
        assert!(err.contains("no PostgreSQL process"), "{err}");
        assert!(describe(PgProcs::Server(7), 9).contains("postmaster 7"));
        assert!(describe(PgProcs::All, 9).contains("every PostgreSQL process"));
    }

    #[test]
    fn a_process_that_is_not_postgres_has_no_postmaster() {
        assert_eq!(postmaster_of(std::process::id()), None);
    }
}
