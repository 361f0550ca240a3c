//! The file: frames of changes, appended by one writer thread, read back at open.
//!
//! A frame is one call of the store that changed something: `[length: u32 LE][crc32: u32 LE]`
//! and then `length` bytes, one JSON [`Change`] per line. A frame is whole or it is not there:
//! reading stops at the first frame that is cut short or fails its checksum, and the file is cut
//! back to the end of the frame before it (that frame's caller was never answered).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use agentyard_store::{Change, ChangeSink, MemoryStore, OwnedChange, StoreError};
use tokio::sync::watch;

const HEADER: usize = 8;

/// Where the log stands: everything up to `durable` (a count of frame bytes since the store was
/// opened) is written; `failed` once a write failed, after which nothing more is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    pub durable: u64,
    pub failed: Option<Arc<str>>,
}

#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    /// Where the frame of the call in progress starts, if one is.
    open: Option<usize>,
    /// Bytes at the front of `bytes` that are whole frames.
    sealed: usize,
    stop: bool,
    /// The first error of encoding a change; the writer fails the log with it.
    broken: Option<String>,
}

/// The changes of calls not yet written, and where the writing stands.
pub(crate) struct Journal {
    buf: Mutex<Buf>,
    wake: Condvar,
    /// Frame bytes sealed since open: a call waits until `durable` reaches the value it saw.
    sealed_total: AtomicU64,
    durable: AtomicU64,
    progress: watch::Sender<Progress>,
}

impl Journal {
    pub(crate) fn new() -> Self {
        Self {
            buf: Mutex::new(Buf::default()),
            wake: Condvar::new(),
            sealed_total: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            progress: watch::Sender::new(Progress::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The position a caller must see written before it answers: every call sealed so far.
    pub(crate) fn sealed(&self) -> u64 {
        self.sealed_total.load(Ordering::Acquire)
    }

    /// Waits until everything up to `position` is written.
    pub(crate) async fn settle(&self, position: u64) -> Result<(), StoreError> {
        if self.durable.load(Ordering::Acquire) >= position {
            return Ok(());
        }
        let mut rx = self.progress.subscribe();
        let seen = rx
            .wait_for(|p| p.durable >= position || p.failed.is_some())
            .await
            .map_err(|_| StoreError::Unavailable("the log store is closed".into()))?;
        if seen.durable >= position {
            return Ok(());
        }
        let why = seen.failed.clone().unwrap_or_default();
        Err(StoreError::Unavailable(format!(
            "the log could not be written ({why}); nothing since is acknowledged; restart the server to recover from the log"
        )))
    }

    fn advance(&self, durable: u64) {
        self.durable.store(durable, Ordering::Release);
        self.progress.send_modify(|p| p.durable = durable);
    }

    fn fail(&self, why: String) {
        tracing::error!(error = %why, "the log store cannot write its file: no change is acknowledged from now on");
        self.progress.send_modify(|p| p.failed = Some(why.into()));
    }

    /// Drops every sealed frame not yet written, returning the position they reach: the caller
    /// holds the store's lock and has a copy of the state that includes them (a compaction).
    pub(crate) fn cut(&self) -> u64 {
        let mut b = self.lock();
        debug_assert!(b.open.is_none(), "no call is in progress under the store's lock");
        let sealed = b.sealed;
        b.bytes.drain(..sealed);
        b.sealed = 0;
        self.sealed()
    }

    /// Asks the writer to write what is sealed and stop.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    /// Waits for sealed frames and takes them, with the position they reach; `None` once stopped
    /// with nothing left to write.
    fn take(&self, spare: Vec<u8>) -> Result<Option<(Vec<u8>, u64)>, String> {
        let mut b = self.lock();
        loop {
            if let Some(e) = b.broken.take() {
                return Err(e);
            }
            if b.sealed > 0 {
                break;
            }
            if b.stop {
                return Ok(None);
            }
            b = self.wake.wait(b).unwrap_or_else(|e| e.into_inner());
        }
        let sealed = b.sealed;
        let mut chunk = spare;
        chunk.clear();
        chunk.extend_from_slice(&b.bytes[..sealed]);
        b.bytes.drain(..sealed);
        if let Some(open) = b.open.as_mut() {
            *open -= sealed;
        }
        b.sealed = 0;
        Ok(Some((chunk, self.sealed())))
    }
}

impl ChangeSink for Journal {
    fn record(&self, change: &Change<'_>) {
        let mut b = self.lock();
        if b.open.is_none() {
            let start = b.bytes.len();
            b.open = Some(start);
            b.bytes.extend_from_slice(&[0; HEADER]);
        }
        if let Err(e) = serde_json::to_writer(&mut b.bytes, change) {
            b.broken
                .get_or_insert_with(|| format!("a change could not be encoded: {e}"));
        }
        b.bytes.push(b'\n');
    }

    fn seal(&self) {
        let mut b = self.lock();
        let Some(start) = b.open.take() else { return };
        let body = &b.bytes[start + HEADER..];
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(body);
        b.bytes[start..start + 4].copy_from_slice(&len.to_le_bytes());
        b.bytes[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
        let frame = (b.bytes.len() - start) as u64;
        b.sealed = b.bytes.len();
        // Under the buffer's lock, so the total only grows frame by frame in the buffer's order.
        self.sealed_total.fetch_add(frame, Ordering::AcqRel);
        drop(b);
        self.wake.notify_one();
    }
}

/// Frames one change per frame (a snapshot's frames need not be atomic together: the snapshot is
/// written to a file of its own and renamed into place).
fn encode_snapshot(changes: &[OwnedChange], out: &mut Vec<u8>) -> io::Result<()> {
    // OwnedChange only deserializes; its shape is Change's, so serialize through a borrowed view.
    for change in changes {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        serde_json::to_writer(&mut *out, &borrowed(change)).map_err(io::Error::other)?;
        out.push(b'\n');
        let body = &out[start + HEADER..];
        let len = u32::try_from(body.len()).map_err(|_| io::Error::other("a change is larger than 4 GiB"))?;
        let crc = crc32fast::hash(body);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    }
    Ok(())
}

fn borrowed(c: &OwnedChange) -> Change<'_> {
    match c {
        OwnedChange::Task { task, meta } => Change::Task { task, meta },
        OwnedChange::Agent(a) => Change::Agent(a),
        OwnedChange::AgentRemoved { namespace, name } => Change::AgentRemoved { namespace, name },
        OwnedChange::Message(m) => Change::Message(m),
        OwnedChange::Subscribed {
            namespace,
            agent,
            topic,
            after,
        } => Change::Subscribed {
            namespace,
            agent,
            topic,
            after: *after,
        },
        OwnedChange::Unsubscribed {
            namespace,
            agent,
            topic,
        } => Change::Unsubscribed {
            namespace,
            agent,
            topic,
        },
    }
}

/// What reading the file at open found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub frames: u64,
    pub changes: u64,
    /// Bytes after the last whole frame, cut off (a write the crash interrupted).
    pub cut_bytes: u64,
    /// Size of the file after the cut.
    pub bytes: u64,
}

/// Reads every whole frame of `file` into `store` and cuts off a torn tail.
pub(crate) fn replay(path: &Path, file: &mut File, store: &MemoryStore) -> Result<Replayed, StoreError> {
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| StoreError::Other(format!("cannot read the log {}: {e}", path.display())))?;
    let mut at = 0usize;
    let mut frames = 0u64;
    let mut changes = Vec::new();
    let mut total = 0u64;
    while data.len() - at >= HEADER {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + HEADER].try_into().expect("4 bytes"));
        let Some(body) = data.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(body) != crc {
            break;
        }
        for (i, line) in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let change: OwnedChange = serde_json::from_slice(line).map_err(|e| {
                StoreError::Other(format!(
                    "the log {} has a whole frame at byte {at} whose change {i} cannot be read ({e}): \
                     it was written by another version or damaged; the server will not start on it",
                    path.display()
                ))
            })?;
            changes.push(change);
        }
        frames += 1;
        at += HEADER + len;
        // Apply in slices so a long log does not hold every change in memory at once.
        if changes.len() >= 4096 {
            total += changes.len() as u64;
            store.restore(changes.drain(..));
        }
    }
    total += changes.len() as u64;
    store.restore(changes);
    let cut = (data.len() - at) as u64;
    if cut > 0 {
        tracing::warn!(
            path = %path.display(),
            bytes = cut,
            "the log ends in a frame cut short (a write the last stop interrupted; its caller was never answered): cutting it off"
        );
        file.set_len(at as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::Other(format!("cannot cut the torn end of the log {}: {e}", path.display())))?;
    }
    Ok(Replayed {
        frames,
        changes: total,
        cut_bytes: cut,
        bytes: at as u64,
    })
}

/// The writer thread: writes what callers sealed, one `write` per group, and compacts the file
/// into a snapshot of the state when it has grown past `compact_at`.
pub(crate) struct Writer {
    pub path: PathBuf,
    pub file: File,
    pub len: u64,
    pub fsync: bool,
    pub min_compact: u64,
    pub journal: Arc<Journal>,
    pub store: Arc<MemoryStore>,
}

impl Writer {
    pub(crate) fn run(mut self) {
        let mut spare = Vec::new();
        let mut compact_at = self.min_compact.max(self.len.saturating_mul(2));
        loop {
            let (chunk, reaches) = match self.journal.take(spare) {
                Ok(Some(next)) => next,
                Ok(None) => return,
                Err(e) => return self.journal.fail(e),
            };
            let written = self
                .file
                .write_all(&chunk)
                .and_then(|()| if self.fsync { self.file.sync_data() } else { Ok(()) });
            if let Err(e) = written {
                return self.journal.fail(format!("writing {}: {e}", self.path.display()));
            }
            self.len += chunk.len() as u64;
            self.journal.advance(reaches);
            spare = chunk;
            if self.len >= compact_at {
                match self.compact() {
                    Ok(()) => compact_at = self.min_compact.max(self.len.saturating_mul(2)),
                    Err(e) => return self.journal.fail(format!("compacting {}: {e}", self.path.display())),
                }
            }
        }
    }

    /// Replaces the file by a snapshot of the state: written beside it, synced, renamed over it.
    fn compact(&mut self) -> io::Result<()> {
        let started = std::time::Instant::now();
        let (changes, reaches) = self.store.export_with(|| self.journal.cut());
        let copied = started.elapsed();
        let mut out = Vec::new();
        encode_snapshot(&changes, &mut out)?;
        let tmp = compact_path(&self.path);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        let before = self.len;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.len = out.len() as u64;
        self.journal.advance(reaches);
        tracing::info!(
            path = %self.path.display(),
            before_bytes = before,
            after_bytes = self.len,
            entries = changes.len(),
            locked_ms = copied.as_millis() as u64,
            took_ms = started.elapsed().as_millis() as u64,
            "compacted the log into a snapshot"
        );
        Ok(())
    }
}

pub(crate) fn compact_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".compacting");
    path.with_file_name(name)
}

/// Makes a rename in the file's directory durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
