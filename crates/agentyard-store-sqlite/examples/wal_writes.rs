//! What SQLite's way of writing the log costs against one write per commit, without SQLite:
//! `cargo run --release -p agentyard-store-sqlite --example wal_writes -- [FRAMES] [COMMITS]`
//! (defaults 6 and 20,000).
//!
//! SQLite appends each page of a commit to the write-ahead log with two `pwrite`s, the 24-byte
//! frame header and the page. This writes `FRAMES` frames of 2 KiB pages per commit that way and
//! as one `pwrite` of the same bytes, into a file that grows (the log under a load that never
//! pauses, which SQLite never starts over) and into one that is reused from its start every
//! 2,000 frames (the log after a checkpoint caught up). No fsync, as with durability `normal`.
//! See BENCHMARKS.md, fourth round.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

const PAGE: usize = 2048;
const HEADER: usize = 24;
const FRAME: u64 = (PAGE + HEADER) as u64;
/// The log's own header, before the first frame.
const LOG_HEADER: u64 = 32;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let frames = args.next().flatten().unwrap_or(6).max(1);
    let commits = args.next().flatten().unwrap_or(20_000).max(1);
    let dir = tempfile::tempdir()?;
    for coalesced in [false, true] {
        for reuse_after in [None, Some(2_000u64)] {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.path().join("log"))?;
            let header = [1u8; HEADER];
            let page = [2u8; PAGE];
            let mut commit = Vec::with_capacity(frames * FRAME as usize);
            let mut offset = LOG_HEADER;
            let start = Instant::now();
            for _ in 0..commits {
                if reuse_after.is_some_and(|limit| offset > LOG_HEADER + limit * FRAME) {
                    offset = LOG_HEADER;
                }
                if coalesced {
                    commit.clear();
                    for _ in 0..frames {
                        commit.extend_from_slice(&header);
                        commit.extend_from_slice(&page);
                    }
                    file.write_all_at(&commit, offset)?;
                    offset += frames as u64 * FRAME;
                } else {
                    for _ in 0..frames {
                        file.write_all_at(&header, offset)?;
                        file.write_all_at(&page, offset + HEADER as u64)?;
                        offset += FRAME;
                    }
                }
            }
            let per_commit = start.elapsed().as_secs_f64() / commits as f64 * 1e6;
            println!(
                "{frames} frames per commit, {:<26} log {:<28} {per_commit:6.1} µs per commit",
                if coalesced {
                    "one pwrite per commit,"
                } else {
                    "two pwrites per frame,"
                },
                if reuse_after.is_some() {
                    "reused every 2,000 frames:"
                } else {
                    "growing:"
                },
            );
        }
    }
    Ok(())
}
