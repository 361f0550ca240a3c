//! Writing the file: frames of changes (see `format.rs`), appended in turns on the runtime's
//! blocking threads, and compacted by a thread of its own.
//!
//! A frame is one call of the store that changed something, so a call is replayed whole or not at
//! all (`replay.rs` reads the file back at open).
//!
//! No file IO runs on the async runtime's worker threads: a caller whose frames must be written
//! takes the turn and hands it to a blocking thread (`spawn_blocking`), which writes (and syncs)
//! while the caller waits asynchronously.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use agentyard_store::{Change, ChangeSink, ExportCursor, MemoryStore, StoreError};
use tokio::sync::Notify;

use crate::format::{FRAME_HEADER, close_frame, encode_change, encode_snapshot, file_header};

#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    /// Where the frame of the call in progress starts, if one is.
    open: Option<usize>,
    /// Bytes at the front of `bytes` that are whole frames.
    sealed: usize,
    /// The first error of encoding a change; the next write fails the log with it.
    broken: Option<String>,
}

/// The file and what writing it needs; only the caller holding `Journal::writing` touches it.
pub(crate) struct Out {
    pub path: PathBuf,
    /// `None` once the store closed (so its lock is let go even while a blocking thread that
    /// wrote for it still holds the journal).
    pub file: Option<File>,
    pub len: u64,
    pub fsync: bool,
    pub min_compact: u64,
    pub compact_at: u64,
    /// Reused between writes.
    pub chunk: Vec<u8>,
}

/// The changes of calls not yet written, the file, and where the writing stands.
///
/// There is no writer thread: a caller waiting for its frames to be written takes the turn to
/// write if nobody has it and hands it to a blocking thread, which writes every frame sealed by
/// then, its own and the others', in one `write`, and goes on with whatever was sealed meanwhile
/// until a look finds nothing new; whoever waits is woken after each write and either finds its
/// frames written or takes the next turn (group commit, the way the SQLite store's writer does
/// it).
pub(crate) struct Journal {
    buf: Mutex<Buf>,
    /// Frame bytes sealed since open: a call waits until `durable` reaches the value it saw.
    sealed_total: AtomicU64,
    durable: AtomicU64,
    /// Someone is writing (or compacting); the others wait on `written`.
    writing: AtomicBool,
    written: Notify,
    failed: OnceLock<Arc<str>>,
    out: Mutex<Out>,
    /// A compaction is running on its thread.
    compacting: AtomicBool,
    /// The compaction waits for the turn: nobody else takes it meanwhile.
    switching: AtomicBool,
    pub(crate) compactions: AtomicU64,
    compaction: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Weak: the store holds this journal as its sink.
    store: Weak<MemoryStore>,
}

impl Journal {
    pub(crate) fn new(out: Out, store: Weak<MemoryStore>) -> Self {
        Self {
            buf: Mutex::new(Buf::default()),
            sealed_total: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            writing: AtomicBool::new(false),
            written: Notify::new(),
            failed: OnceLock::new(),
            out: Mutex::new(out),
            compacting: AtomicBool::new(false),
            switching: AtomicBool::new(false),
            compactions: AtomicU64::new(0),
            compaction: Mutex::new(None),
            store,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The position a caller must see written before it answers: every call sealed so far.
    pub(crate) fn sealed(&self) -> u64 {
        self.sealed_total.load(Ordering::Acquire)
    }

    fn failure(&self) -> Option<StoreError> {
        self.failed.get().map(|why| {
            StoreError::Unavailable(format!(
                "the log could not be written ({why}); nothing since is acknowledged; restart the server to recover from the log"
            ))
        })
    }

    /// Returns once everything up to `position` is written, writing it if nobody else is.
    pub(crate) async fn settle(self: &Arc<Self>, position: u64) -> Result<(), StoreError> {
        loop {
            let done = self.written.notified();
            tokio::pin!(done);
            // Registered before looking, so a turn that ends after the look still wakes us.
            done.as_mut().enable();
            // Failure first: a call whose frame could not even be sealed has a position that may
            // be written already.
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if self.durable.load(Ordering::Acquire) >= position {
                return Ok(());
            }
            if !self.switching.load(Ordering::Acquire)
                && self
                    .writing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                Turn::hand_off(self.clone());
            }
            done.await;
        }
    }

    /// Writes what is sealed, again as long as more was sealed during the write: under load one
    /// blocking thread writes group after group. Stops when a look finds nothing new, the
    /// compaction waits for the turn, or the log failed. The caller holds the turn.
    fn write_turns(self: &Arc<Self>) {
        loop {
            let written = self.write_turn();
            if written.grown {
                self.start_compaction();
            }
            if !written.wrote || self.failed.get().is_some() || self.switching.load(Ordering::Acquire) {
                return;
            }
            // Those whose frames this write covered go on; the others wait for the next.
            self.written.notify_waiters();
        }
    }

    fn end_turn(&self) {
        self.writing.store(false, Ordering::Release);
        self.written.notify_waiters();
    }

    /// Writes every sealed frame. The caller holds the turn.
    fn write_turn(&self) -> Written {
        let mut out = self.lock_out();
        let (reaches, broken) = {
            let mut b = self.lock();
            let sealed = b.sealed;
            // The buffers change places (no copy of the sealed frames); a frame still open goes
            // back into the buffer.
            out.chunk.clear();
            std::mem::swap(&mut out.chunk, &mut b.bytes);
            b.bytes.extend_from_slice(&out.chunk[sealed..]);
            out.chunk.truncate(sealed);
            if let Some(open) = b.open.as_mut() {
                *open -= sealed;
            }
            b.sealed = 0;
            (self.sealed(), b.broken.take())
        };
        let nothing = Written {
            wrote: false,
            grown: false,
        };
        if let Some(e) = broken {
            self.fail(e);
            return nothing;
        }
        if out.chunk.is_empty() {
            return nothing;
        }
        let out = &mut *out;
        let Some(file) = out.file.as_mut() else {
            self.fail(format!("writing {}: the store is closed", out.path.display()));
            return nothing;
        };
        let written = file
            .write_all(&out.chunk)
            .and_then(|()| if out.fsync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            self.fail(format!("writing {}: {e}", out.path.display()));
            return nothing;
        }
        out.len += out.chunk.len() as u64;
        self.durable.store(reaches, Ordering::Release);
        Written {
            wrote: true,
            grown: out.len >= out.compact_at,
        }
    }

    /// Compacts the file on a thread of its own, unless a compaction is running already.
    fn start_compaction(self: &Arc<Self>) {
        if self
            .compacting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let journal = self.clone();
        let spawned = std::thread::Builder::new()
            .name("agentyard-log-compaction".into())
            .spawn(move || {
                journal.compact();
                journal.compacting.store(false, Ordering::Release);
            });
        match spawned {
            Ok(handle) => {
                let mut slot = self.compaction.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(previous) = slot.replace(handle) {
                    let _ = previous.join();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a thread to compact the log; it grows until the next try");
                self.compacting.store(false, Ordering::Release);
            }
        }
    }

    /// Replaces the file by a snapshot of the state followed by the frames written while the
    /// snapshot was taken. Writers go on meanwhile and wait only while that tail is copied and the
    /// new file is renamed into place.
    fn compact(&self) {
        let Some(store) = self.store.upgrade() else { return };
        let started = std::time::Instant::now();
        let path = self.lock_out().path.clone();
        let tmp = compact_path(&path);
        // Every change at or before `from` is in the state the pages are taken from; every later
        // one is in a frame after `from`, copied behind the snapshot.
        let from = self.sealed();
        let snapshot = write_snapshot(&store, &tmp);
        drop(store);
        let (mut file, entries) = match snapshot {
            Ok(done) => done,
            Err(e) => return self.give_up(&tmp, &e),
        };
        let snapshot_ms = started.elapsed().as_millis() as u64;
        // Catch up with what was written meanwhile without stopping the writers, so that what is
        // left to copy while they wait is small.
        let mut from = from;
        for _ in 0..4 {
            let (len, durable) = {
                let out = self.lock_out();
                (out.len, self.durable.load(Ordering::Acquire))
            };
            if durable.saturating_sub(from) < 1 << 20 {
                break;
            }
            if let Err(e) = copy_tail(&path, len, durable, from, &mut file) {
                return self.give_up(&tmp, &e);
            }
            from = durable;
        }
        // Synced now, so the sync while the writers wait covers only the last bit of the tail.
        if let Err(e) = file.sync_data() {
            return self.give_up(&tmp, &e);
        }
        let switch = std::time::Instant::now();
        // The turn: no write goes to the old file while its tail is copied. Once the current
        // turn ends nobody else takes one, so this waits for one write at most.
        self.switching.store(true, Ordering::Release);
        while self
            .writing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
        self.switching.store(false, Ordering::Release);
        self.write_turn();
        if self.failed.get().is_some() {
            let _ = std::fs::remove_file(&tmp);
            self.end_turn();
            return;
        }
        let mut out = self.lock_out();
        let before = out.len;
        let result = switch_to(&mut out, &mut file, &tmp, from, self.durable.load(Ordering::Acquire));
        let mut replaced = None;
        match result {
            Ok(old) => {
                replaced = Some(old);
                out.compact_at = out.min_compact.max(out.len.saturating_mul(2));
                self.compactions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    path = %out.path.display(),
                    before_bytes = before,
                    after_bytes = out.len,
                    entries,
                    snapshot_ms,
                    writes_waited_ms = switch.elapsed().as_millis() as u64,
                    "compacted the log into a snapshot"
                );
            }
            Err(e) => self.fail(format!("compacting {}: {e}", out.path.display())),
        }
        let fsync = out.fsync;
        drop(out);
        self.end_turn();
        drop(replaced);
        if !fsync && let Err(e) = sync_dir(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot sync the log's directory after compacting it");
        }
    }

    /// A compaction that failed before touching the log: the log stays as it was and grows on;
    /// the next try is at twice the size.
    fn give_up(&self, tmp: &Path, e: &io::Error) {
        let _ = std::fs::remove_file(tmp);
        let mut out = self.lock_out();
        out.compact_at = out.compact_at.saturating_mul(2);
        tracing::warn!(
            path = %out.path.display(),
            error = %e,
            next_at_bytes = out.compact_at,
            "cannot compact the log; it keeps growing, and the next try is at twice the size"
        );
    }

    /// Waits for a compaction in progress to end (at close).
    pub(crate) fn finish_compaction(&self) {
        let handle = self.compaction.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn fail(&self, why: String) {
        tracing::error!(error = %why, "the log store cannot write its file: no change is acknowledged from now on");
        let _ = self.failed.set(why.into());
    }

    /// At close: waits for a turn in progress, writes what is sealed and not yet written (a
    /// caller that stopped waiting, its request cancelled, leaves its frames to whoever writes
    /// next; at close that is nobody), and closes the file, which lets its lock go. The turn is
    /// kept: nothing is written after this.
    pub(crate) fn close(&self) {
        while self
            .writing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        if self.failed.get().is_none() {
            self.write_turn();
        }
        self.lock_out().file = None;
    }
}

/// What a write turn did.
struct Written {
    /// Something was written.
    wrote: bool,
    /// The file reached the size to compact it at.
    grown: bool,
}

/// The turn to write, taken by a caller and handed to a blocking thread. A turn must end, and
/// with every frame sealed before it written: one the runtime drops without running it (it
/// drops the blocking tasks it has not started when it shuts down) writes where it is dropped.
struct Turn {
    journal: Arc<Journal>,
    ran: bool,
}

impl Turn {
    /// Runs the turn the caller took on the runtime's blocking pool (here, outside a runtime).
    fn hand_off(journal: Arc<Journal>) {
        let turn = Turn { journal, ran: false };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || turn.run());
            }
            Err(_) => turn.run(),
        }
    }

    fn run(mut self) {
        self.journal.write_turns();
        self.ran = true;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.ran && !std::thread::panicking() {
            self.journal.write_turns();
        }
        self.journal.end_turn();
    }
}

impl ChangeSink for Journal {
    fn record(&self, change: &Change<'_>) {
        let mut b = self.lock();
        if b.open.is_none() {
            let start = b.bytes.len();
            b.open = Some(start);
            b.bytes.extend_from_slice(&[0; FRAME_HEADER]);
        }
        if let Err(e) = encode_change(change, &mut b.bytes) {
            b.broken
                .get_or_insert_with(|| format!("a change could not be encoded: {e}"));
        }
    }

    fn seal(&self) {
        let mut b = self.lock();
        let Some(start) = b.open.take() else { return };
        if let Err(e) = close_frame(&mut b.bytes[start..]) {
            // Not written, and nothing answered from now on: the caller sees the failure too.
            b.bytes.truncate(start);
            drop(b);
            self.fail(e.to_string());
            return;
        }
        let frame = (b.bytes.len() - start) as u64;
        b.sealed = b.bytes.len();
        // Under the buffer's lock, so the total only grows frame by frame in the buffer's order.
        self.sealed_total.fetch_add(frame, Ordering::AcqRel);
    }
}

/// Writes the state, page by page, to `tmp`, synced; returns the file and the entries written.
fn write_snapshot(store: &MemoryStore, tmp: &Path) -> io::Result<(File, usize)> {
    let mut file = File::create(tmp)?;
    file.write_all(&file_header())?;
    let mut cursor = ExportCursor::default();
    let mut bytes = Vec::new();
    let mut entries = 0;
    while !cursor.done() {
        let page = store.export_page(&mut cursor, 1024);
        entries += page.len();
        bytes.clear();
        encode_snapshot(&page, &mut bytes)?;
        file.write_all(&bytes)?;
    }
    file.sync_data()?;
    Ok((file, entries))
}

/// Copies the frames between position `from` and `durable` from the log (whose end, `len`,
/// stands for `durable`) to the end of the snapshot.
fn copy_tail(path: &Path, len: u64, durable: u64, from: u64, snapshot: &mut File) -> io::Result<()> {
    let tail_len = durable
        .checked_sub(from)
        .ok_or_else(|| io::Error::other("the log is behind the snapshot"))?;
    let tail_start = len
        .checked_sub(tail_len)
        .ok_or_else(|| io::Error::other("the log is shorter than what was written since the snapshot began"))?;
    let mut old = File::open(path)?;
    old.seek(SeekFrom::Start(tail_start))?;
    let copied = io::copy(&mut old.take(tail_len), snapshot)?;
    if copied != tail_len {
        return Err(io::Error::other(format!(
            "copied {copied} bytes of the log's tail, expected {tail_len}"
        )));
    }
    Ok(())
}

/// Copies the frames after position `from` from the log to the snapshot in `tmp`, renames it over
/// the log (synced first with durability `full`) and makes it the file written from now on;
/// returns the old one. `durable` is the position the log's end stands for (everything sealed is
/// written: the caller holds the turn).
fn switch_to(out: &mut Out, snapshot: &mut File, tmp: &Path, from: u64, durable: u64) -> io::Result<Option<File>> {
    copy_tail(&out.path, out.len, durable, from, snapshot)?;
    // The snapshot and most of the tail were synced before the writers stopped. With durability
    // `normal` the last bit is not: a power loss may cost the last writes, never the snapshot
    // (the tail's frames carry checksums, and the file is read up to the first torn one).
    if out.fsync {
        snapshot.sync_data()?;
    }
    let len = snapshot.seek(SeekFrom::End(0))?;
    std::fs::rename(tmp, &out.path)?;
    if out.fsync {
        sync_dir(&out.path)?;
    }
    // The exclusive lock stays on the file we had open until it closes; take it on the new one.
    let file = OpenOptions::new().append(true).open(&out.path)?;
    file.try_lock()
        .map_err(|e| io::Error::other(format!("cannot lock the compacted log: {e}")))?;
    out.len = len;
    // The old file's last handle: closing it frees its blocks and pages, tens of milliseconds
    // for a large log, so the caller does it once the writers go on.
    Ok(out.file.replace(file))
}

pub(crate) fn compact_path(path: &Path) -> PathBuf {
    beside(path, ".compacting")
}

/// `path` with `suffix` added to its file name.
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
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
