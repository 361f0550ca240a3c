//! Reading the file back at open: its header, then frame by frame into the memory store, and what
//! to do with bytes that do not form a whole frame.
//!
//! Reading stops at the first frame that is cut short, has length 0 or fails its checksum. What
//! happens then depends on what follows it:
//! - nothing that is a whole frame: a torn tail, the last write interrupted by a crash (its
//!   callers were never answered). It is cut off, and kept in `PATH.cut-MILLIS`.
//! - a whole frame, somewhere after it: damage before the tail (a bad sector, a stray write). The
//!   frames after it may hold acknowledged changes, so the open fails, naming the byte offset,
//!   unless [`LogOptions::repair`](crate::LogOptions::repair) asks to cut the log there (the cut
//!   bytes are kept in `PATH.cut-MILLIS` just the same).
//!
//! A power loss can also leave a hole inside the last write with whole frames of that same write
//! behind it (pages reaching the disk out of order, with durability `normal`). The file alone
//! cannot tell that from damage, so it is refused too, and a repair cuts it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use agentyard_store::{MemoryStore, StoreError};

use crate::format::{
    FORMAT_VERSION, FRAME_HEADER, Layout, MAX_HEADER_BODY, Refused, decode_change, file_header, frame_header, layout,
};
use crate::journal::{beside, sync_dir};

/// What reading the file at open found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Frames of changes read (the file header is not one).
    pub frames: u64,
    pub changes: u64,
    /// Bytes after the last whole frame, cut off (usually a write the last stop interrupted, or
    /// with [`LogOptions::repair`](crate::LogOptions::repair), everything from the damage on).
    pub cut_bytes: u64,
    /// Where the cut bytes were kept, when there were any.
    pub cut_kept_in: Option<PathBuf>,
    /// The cut was damage with whole frames after it, cut because a repair was asked for.
    pub repaired: bool,
    /// The file has a header. False for a log written before headers (read as format version 1);
    /// its next compaction gives it one.
    pub headed: bool,
    /// Size of the file after the cut.
    pub bytes: u64,
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    /// Fewer bytes left than a frame header.
    Short,
    /// A frame of length 0.
    Empty,
    /// A frame longer than what is left of the file.
    PastEnd {
        len: u32,
    },
    Checksum,
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Short => f.write_str("fewer bytes than a frame header"),
            Bad::Empty => f.write_str("a frame of length 0"),
            Bad::PastEnd { len } => write!(f, "a frame of {len} bytes running past the end of the file"),
            Bad::Checksum => f.write_str("a frame that fails its checksum"),
        }
    }
}

/// Reads the header and every whole frame of `file` into `store`, and deals with what follows
/// the last one (see the module docs). A new file gets its header here.
pub(crate) fn replay(path: &Path, file: &mut File, store: &MemoryStore, repair: bool) -> Result<Replayed, StoreError> {
    let shown = path.display();
    let unreadable = |e: io::Error| StoreError::Other(format!("cannot read the log {shown}: {e}"));
    let len = file.metadata().map_err(unreadable)?.len();
    let start = match read_layout(file, len).map_err(unreadable)? {
        Ok(Layout::Fresh) => return start_fresh(path, file, len),
        Ok(Layout::Headed { version, frames_at }) => {
            debug_assert!(version <= FORMAT_VERSION);
            Some(frames_at)
        }
        Ok(Layout::HeaderLess) => None,
        Err(Refused::Foreign) => {
            return Err(StoreError::Other(format!(
                "{shown} is not an agentyard log: it starts with neither the log's header nor a frame of changes \
                 (is the store URL naming the right file?); the server will not start on it"
            )));
        }
        Err(Refused::DamagedHeader) => {
            return Err(StoreError::Other(format!(
                "the header of the log {shown} (its first bytes) is damaged; the server will not start on it"
            )));
        }
        Err(Refused::Newer(version)) => {
            return Err(StoreError::Other(format!(
                "the log {shown} is in format version {version}, written by a newer agentyard; this one reads up to \
                 version {FORMAT_VERSION}: run the newer version on it"
            )));
        }
    };
    let headed = start.is_some();
    let start = start.unwrap_or(0);
    file.seek(SeekFrom::Start(start)).map_err(unreadable)?;
    let mut reader = io::BufReader::with_capacity(1 << 20, &mut *file);
    let mut at = start;
    let mut frames = 0u64;
    let mut header = [0u8; FRAME_HEADER];
    let mut body = Vec::new();
    let mut changes = Vec::new();
    let mut total = 0u64;
    let mut bad = None;
    while at < len {
        if len - at < FRAME_HEADER as u64 {
            bad = Some(Bad::Short);
            break;
        }
        reader.read_exact(&mut header).map_err(unreadable)?;
        let (size, crc) = frame_header(&header);
        if size == 0 {
            bad = Some(Bad::Empty);
            break;
        }
        if u64::from(size) > len - at - FRAME_HEADER as u64 {
            bad = Some(Bad::PastEnd { len: size });
            break;
        }
        body.resize(size as usize, 0);
        reader.read_exact(&mut body).map_err(unreadable)?;
        if crc32fast::hash(&body) != crc {
            bad = Some(Bad::Checksum);
            break;
        }
        for (i, line) in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let change = decode_change(line).map_err(|e| {
                StoreError::Other(format!(
                    "the log {shown} has a whole frame at byte {at} whose change {i} cannot be read ({e}): \
                     it was written by another version or damaged; the server will not start on it"
                ))
            })?;
            changes.push(change);
        }
        frames += 1;
        at += (FRAME_HEADER + body.len()) as u64;
        // Apply in slices so a long log does not hold every change in memory at once.
        if changes.len() >= 4096 {
            total += changes.len() as u64;
            store.restore(changes.drain(..));
        }
    }
    drop(reader);
    let mut replayed = Replayed {
        frames,
        changes: total,
        cut_bytes: 0,
        cut_kept_in: None,
        repaired: false,
        headed,
        bytes: at,
    };
    if let Some(bad) = bad {
        let next = next_whole_frame(file, at, len).map_err(unreadable)?;
        if let Some(next) = next {
            if !repair {
                return Err(StoreError::Other(format!(
                    "the log {shown} is damaged at byte {at} ({bad}), and whole frames follow it (the first at byte \
                     {next}) that may hold acknowledged changes: the server will not start on it and drop them. \
                     To start anyway, losing every change from byte {at} on: keep a copy of the file, then open it \
                     once with repair (`agentyard serve --repair`), which cuts the log at byte {at} and keeps the \
                     {} bytes cut off in {shown}.cut-MILLIS",
                    len - at
                )));
            }
            replayed.repaired = true;
        }
        let kept = keep_cut(path, file, at)
            .map_err(|e| StoreError::Other(format!("cannot keep the cut end of the log {shown}: {e}")))?;
        if replayed.repaired {
            tracing::warn!(
                path = %shown,
                at,
                bytes = len - at,
                kept_in = %kept.display(),
                "repair: the log is damaged at this byte, with whole frames after it; as asked, it is cut there, \
                 and every change after it is lost from the store (the cut bytes are kept in the file named here)"
            );
        } else {
            tracing::warn!(
                path = %shown,
                at,
                bytes = len - at,
                kept_in = %kept.display(),
                "the log does not end in a whole frame: usually a write the last stop interrupted, whose callers were \
                 never answered; those bytes are cut off the log and kept in the file named here"
            );
        }
        file.set_len(at)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::Other(format!("cannot cut the end of the log {shown}: {e}")))?;
        replayed.cut_bytes = len - at;
        replayed.cut_kept_in = Some(kept);
    }
    total += changes.len() as u64;
    store.restore(changes);
    replayed.changes = total;
    if replayed.bytes == 0 {
        // A header-less log whose only frame was torn: nothing is left of it, so it starts over
        // as a new file, with a header.
        let fresh = start_fresh(path, file, 0)?;
        replayed.bytes = fresh.bytes;
        replayed.headed = true;
    }
    Ok(replayed)
}

/// The layout the file's first bytes tell.
fn read_layout(file: &mut File, len: u64) -> io::Result<Result<Layout, Refused>> {
    let mut head = vec![0; len.min(64) as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    layout(&head, |body_len| {
        let mut body = Vec::new();
        file.seek(SeekFrom::Start(FRAME_HEADER as u64))?;
        file.take(u64::from(body_len.min(MAX_HEADER_BODY)))
            .read_to_end(&mut body)?;
        Ok(body)
    })
}

/// A new file (or one holding only part of a header): written with its header, synced.
fn start_fresh(path: &Path, file: &mut File, len: u64) -> Result<Replayed, StoreError> {
    let header = file_header();
    let written = file
        .set_len(0)
        .and_then(|()| file.write_all(&header))
        .and_then(|()| file.sync_all())
        .and_then(|()| sync_dir(path));
    written.map_err(|e| StoreError::Other(format!("cannot write the header of the log {}: {e}", path.display())))?;
    if len > 0 {
        tracing::warn!(path = %path.display(), bytes = len, "the log held only part of its header (a crash as it was created); it was written again");
    }
    Ok(Replayed {
        frames: 0,
        changes: 0,
        cut_bytes: 0,
        cut_kept_in: None,
        repaired: false,
        headed: true,
        bytes: header.len() as u64,
    })
}

/// Where the first whole frame after byte `from` starts, if there is one: a frame header whose
/// length fits in the file, a body that looks like changes (`{` … `\n`) and a good checksum.
/// Byte by byte, through a window of the file that moves forward: only a header whose length
/// fits is looked at closer (its body's first and last bytes, then its checksum), and in JSON
/// text none fits (four text bytes read as a length are over 500 MB).
fn next_whole_frame(file: &mut File, from: u64, len: u64) -> io::Result<Option<u64>> {
    let mut window = Window {
        start: 0,
        buf: Vec::new(),
    };
    let mut probe = Vec::new();
    let mut at = from + 1;
    while at + FRAME_HEADER as u64 + 2 <= len {
        let header: [u8; FRAME_HEADER] = window.bytes(file, len, at)?.try_into().expect("8 bytes");
        let (size, crc) = frame_header(&header);
        let body_at = at + FRAME_HEADER as u64;
        if size >= 2 && u64::from(size) <= len - body_at {
            let ends = [
                read_at(file, body_at, 1, &mut probe)?[0],
                read_at(file, body_at + u64::from(size) - 1, 1, &mut probe)?[0],
            ];
            if ends == [b'{', b'\n'] && crc32fast::hash(read_at(file, body_at, size as usize, &mut probe)?) == crc {
                return Ok(Some(at));
            }
        }
        at += 1;
    }
    Ok(None)
}

/// `n` bytes of `file` at `at`, read into `buf`.
fn read_at<'b>(file: &mut File, at: u64, n: usize, buf: &'b mut Vec<u8>) -> io::Result<&'b [u8]> {
    buf.resize(n, 0);
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)?;
    Ok(buf)
}

/// A part of the file in memory, moved forward as frame headers are looked for.
struct Window {
    start: u64,
    buf: Vec<u8>,
}

impl Window {
    const SIZE: usize = 1 << 20;

    /// The frame header's bytes at `at`, which must be inside the file (of length `len`).
    fn bytes(&mut self, file: &mut File, len: u64, at: u64) -> io::Result<&[u8]> {
        let end = at + FRAME_HEADER as u64;
        if at < self.start || end > self.start + self.buf.len() as u64 {
            let want = Self::SIZE.max(FRAME_HEADER).min((len - at) as usize);
            read_at(file, at, want, &mut self.buf)?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + FRAME_HEADER])
    }
}

/// Copies the bytes of `file` from `at` to its end into a new file beside `path`
/// (`PATH.cut-MILLIS`, synced) and returns its path.
fn keep_cut(path: &Path, file: &mut File, at: u64) -> io::Result<PathBuf> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let kept = beside(path, &format!(".cut-{millis}"));
    let mut out = OpenOptions::new().write(true).create_new(true).open(&kept)?;
    file.seek(SeekFrom::Start(at))?;
    io::copy(file, &mut out)?;
    out.sync_all()?;
    sync_dir(&kept)?;
    Ok(kept)
}
