//! The file spool: append-only segment files in one directory, owned by one process.
//!
//! Layout: `NNNNNNNNNNNNNNNNNNNN.seg` segments (oldest first by number), `set-aside/`
//! for records an operator must look at, and `.lock`, which the owning process holds
//! (`flock`) so two processes never write or drain one directory.
//!
//! One writer thread appends: it takes every append waiting, writes them, calls
//! `fdatasync` once and only then lets their requests answer (group commit, so a
//! burst costs one flush). A process never appends to a segment it did not create:
//! after a crash the old segments are only read, and a tail torn by the crash is
//! found by its checksum. To drain, the writer seals its segment; sealed segments are
//! read in order, each record applied and, once a segment is fully applied, the
//! segment deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use async_trait::async_trait;
use base64::Engine;
use serde_json::json;
use tokio::sync::oneshot;

use super::frame::{self, Frame};
use super::{apply, Backend, DrainReport, Record, SpoolError, SpoolStatus, Stop, Verdict, MAX_STOPS};
use crate::store::Store;

/// A segment is sealed and a new one started past this size.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Appends one flush covers at most.
const GROUP_MAX: usize = 1024;
const SET_ASIDE: &str = "set-aside";

pub struct FileSpool {
    dir: PathBuf,
    max_bytes: u64,
    writer: mpsc::Sender<Command>,
    /// Bytes in the segments, appends in flight included.
    bytes: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
    /// Held for the process's life: the directory is this process's alone.
    _lock: File,
    /// One drain at a time; where an interrupted drain stopped.
    resume: tokio::sync::Mutex<Option<Resume>>,
}

/// Where the next drain starts, and how often the record there has been stopped at
/// by a store that answered the probe but failed the record as unavailable.
#[derive(Debug, Clone, Copy)]
struct Resume {
    segment: u64,
    offset: usize,
    stops: u32,
}

enum Command {
    Append(Vec<u8>, oneshot::Sender<std::io::Result<()>>),
    /// Closes the segment being written; answers with the number the next one will
    /// take, so a drain reads only segments below it.
    Seal(oneshot::Sender<std::io::Result<u64>>),
}

impl FileSpool {
    /// Opens (creating if its parent exists) and checks `dir`: writable, fsync-able,
    /// not full, not held by another process. Counts what earlier runs left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let setup =
            |what: &str, e: std::io::Error| SpoolError::Setup(format!("spool_dir {}: {what}: {e}", dir.display()));
        check_dir(dir)?;
        fs::create_dir_all(dir.join(SET_ASIDE)).map_err(|e| setup("cannot create set-aside/", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(".lock"))
            .map_err(|e| setup("not writable", e))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(SpoolError::Setup(format!(
                "spool_dir {} is in use by another callhook process (each replica needs a spool directory of its own)",
                dir.display()
            )));
        }
        let probe = dir.join(".probe");
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"probe").and_then(|_| f.sync_all()))
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| setup("cannot write and sync a file", e))?;
        check_free(dir, dir)?;
        let SpoolStatus { bytes, records, .. } = inspect(dir, max_bytes)?;
        if records > 0 {
            tracing::warn!(dir = %dir.display(), records, bytes, "the outage spool holds records from an earlier run; draining them once the store answers");
        }
        let next = segments(dir).map_err(|e| setup("cannot list", e))?.last().map_or(1, |(n, _)| n + 1);
        let (bytes, records) = (Arc::new(AtomicU64::new(bytes)), Arc::new(AtomicU64::new(records)));
        let (writer, commands) = mpsc::channel();
        let state = Writer { dir: dir.to_owned(), next, active: None, bytes: bytes.clone(), records: records.clone() };
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || state.run(commands))
            .map_err(|e| setup("cannot start the writer thread", e))?;
        Ok(FileSpool {
            dir: dir.to_owned(),
            max_bytes,
            writer,
            bytes,
            records,
            _lock: lock,
            resume: tokio::sync::Mutex::new(None),
        })
    }

    async fn seal(&self) -> Result<u64, SpoolError> {
        let (reply, done) = oneshot::channel();
        self.writer.send(Command::Seal(reply)).map_err(|_| unavailable("the writer thread stopped"))?;
        done.await.map_err(|_| unavailable("the writer thread stopped"))?.map_err(|e| unavailable(&e.to_string()))
    }

    /// Keeps what could not be applied where an operator finds it, with its error;
    /// durable (file and directory entry synced) before the segment can be removed.
    async fn set_aside(&self, segment: u64, offset: usize, error: &str, bytes: &[u8]) -> Result<(), SpoolError> {
        let record = match std::str::from_utf8(bytes) {
            Ok(text) => json!({"text": text}),
            Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(bytes)}),
        };
        let entry = json!({"error": error, "segment": segment, "offset": offset,
                           "set_aside_at": chrono::Utc::now(), "record": record});
        let dir = self.dir.join(SET_ASIDE);
        // Segment numbers start again in an emptied directory: the id keeps names unique.
        let name = format!("{segment:020}-{offset:010}-{}.json", uuid::Uuid::new_v4().simple());
        blocking(move || {
            let mut file = OpenOptions::new().write(true).create_new(true).open(dir.join(name))?;
            file.write_all(entry.to_string().as_bytes())?;
            file.sync_all()?;
            sync_dir(&dir)
        })
        .await
    }
}

fn unavailable(what: &str) -> SpoolError {
    SpoolError::Unavailable(what.to_owned())
}

/// What `dir` holds, read without taking it over (a running `serve` may own it).
pub fn inspect(dir: &Path, max_bytes: u64) -> Result<SpoolStatus, SpoolError> {
    let failed = |e: std::io::Error| SpoolError::Setup(format!("spool_dir {}: {e}", dir.display()));
    if !dir.is_dir() {
        return Err(SpoolError::Setup(format!("spool_dir {} does not exist", dir.display())));
    }
    let (mut bytes, mut records) = (0, 0);
    for (_, path) in segments(dir).map_err(failed)? {
        let data = fs::read(&path).map_err(failed)?;
        bytes += data.len() as u64;
        records += frame::frames(&data, 0).filter(|f| matches!(f, Frame::Record { .. })).count() as u64;
    }
    let (oldest_at, set_aside) = scan_status(dir).map_err(failed)?;
    Ok(SpoolStatus {
        backend: "file",
        location: dir.display().to_string(),
        records,
        bytes,
        max_bytes,
        oldest_at,
        set_aside,
    })
}

/// `config check`'s look at `dir`, changing nothing: an error for a directory the
/// spool cannot use, a note when `serve` will create it.
pub fn preflight(dir: &Path) -> Result<Option<String>, SpoolError> {
    let failed = |what: &str, e: std::io::Error| SpoolError::Setup(format!("spool_dir {}: {what}: {e}", dir.display()));
    let existing = match fs::metadata(dir) {
        Ok(m) if m.is_dir() => dir.to_owned(),
        Ok(_) => return Err(SpoolError::Setup(format!("spool_dir {} exists and is not a directory", dir.display()))),
        Err(_) => {
            let parent = parent_of(dir);
            if !parent.is_dir() {
                return Err(missing_parent(dir, &parent));
            }
            parent
        }
    };
    let probe = existing.join(format!(".callhook-probe-{}", std::process::id()));
    File::create(&probe).and_then(|_| fs::remove_file(&probe)).map_err(|e| failed("not writable", e))?;
    check_free(dir, &existing)?;
    Ok((existing != dir).then(|| format!("spool_dir {} does not exist yet: serve will create it", dir.display())))
}

fn parent_of(dir: &Path) -> PathBuf {
    dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned()
}

fn missing_parent(dir: &Path, parent: &Path) -> SpoolError {
    SpoolError::Setup(format!(
        "spool_dir {}: its parent {} does not exist (is the volume mounted?)",
        dir.display(),
        parent.display()
    ))
}

/// A missing directory is created when its parent exists; anything else is refused.
pub fn check_dir(dir: &Path) -> Result<(), SpoolError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SpoolError::Setup(format!("spool_dir {} exists and is not a directory", dir.display()))),
        Err(_) => {
            let parent = parent_of(dir);
            if !parent.is_dir() {
                return Err(missing_parent(dir, &parent));
            }
            fs::create_dir(dir)
                .map_err(|e| SpoolError::Setup(format!("spool_dir {}: cannot create it: {e}", dir.display())))?;
            tracing::info!(dir = %dir.display(), "created the outage spool directory");
            Ok(())
        }
    }
}

/// Refuses a disk with less than 1 MiB free under `at` (`dir` itself, or the parent
/// it will be created in).
fn check_free(dir: &Path, at: &Path) -> Result<(), SpoolError> {
    let free = free_bytes(at)
        .map_err(|e| SpoolError::Setup(format!("spool_dir {}: cannot read free space: {e}", dir.display())))?;
    if free < 1024 * 1024 {
        return Err(SpoolError::Setup(format!("spool_dir {}: the disk is full ({free} bytes free)", dir.display())));
    }
    Ok(())
}

fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = vec![];
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let number = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".seg"));
        if let Some(n) = number.and_then(|n| n.parse::<u64>().ok()) {
            found.push((n, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Makes a new or removed directory entry durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

struct Writer {
    dir: PathBuf,
    next: u64,
    active: Option<(File, u64)>,
    bytes: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
}

type Waiting = Vec<oneshot::Sender<std::io::Result<()>>>;

impl Writer {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            let mut batch = vec![first];
            batch.extend(commands.try_iter().take(GROUP_MAX - 1));
            let mut waiting = vec![];
            for command in batch {
                match command {
                    Command::Append(frame, reply) => {
                        if self.active.as_ref().is_some_and(|(_, len)| *len >= SEGMENT_BYTES) {
                            // What the full segment holds is flushed (and answered) with it.
                            let _ = self.flush(&mut waiting);
                            self.active = None;
                        }
                        match self.write(&frame) {
                            Ok(()) => waiting.push(reply),
                            Err(e) => {
                                subtract(&self.bytes, frame.len() as u64);
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Command::Seal(reply) => {
                        let flushed = self.flush(&mut waiting);
                        self.active = None;
                        let _ = reply.send(flushed.map(|()| self.next));
                    }
                }
            }
            // A failure reaches every append it covered; nothing else to do with it.
            let _ = self.flush(&mut waiting);
        }
    }

    fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        if self.active.is_none() {
            let path = self.dir.join(format!("{:020}.seg", self.next));
            // The number is used up even if what follows fails: never reuse a name.
            self.next += 1;
            let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
            sync_dir(&self.dir)?;
            self.active = Some((file, 0));
        }
        let (file, len) = self.active.as_mut().expect("opened above");
        if let Err(e) = file.write_all(frame) {
            // Leave no partial frame behind a failed write (a full disk, say); if even
            // that fails, the segment is left as it is (its tail reads as damage).
            if file.set_len(*len).is_err() {
                self.active = None;
            }
            return Err(e);
        }
        *len += frame.len() as u64;
        Ok(())
    }

    /// `fdatasync`s the segment and answers the appends written to it since the
    /// last flush. A failed flush fails them all and closes the segment: after a
    /// failed fsync Linux may report the next one clean although the pages never
    /// reached the disk, so nothing more is trusted to that file descriptor. Their
    /// records stay in the file and are drained later (a 503'd callback stored
    /// anyway is harmless: a retry of it is a duplicate).
    fn flush(&mut self, waiting: &mut Waiting) -> std::io::Result<()> {
        let synced = match &self.active {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        };
        if synced.is_err() {
            self.active = None;
        }
        for reply in waiting.drain(..) {
            self.records.fetch_add(1, Ordering::Relaxed);
            let _ = reply.send(match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            });
        }
        synced
    }
}

/// Counters follow the files; a file changed behind the spool's back never wraps one.
fn subtract(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
}

#[async_trait]
impl Backend for FileSpool {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn append(&self, record: Vec<u8>, _dedupe_key: &str) -> Result<(), SpoolError> {
        if record.len() > frame::MAX_PAYLOAD_BYTES {
            return Err(unavailable("record too large for the spool"));
        }
        let frame = frame::encode(&record);
        let len = frame.len() as u64;
        let before = self.bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.max_bytes {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            return Err(SpoolError::Full(format!("{before} of {} bytes used", self.max_bytes)));
        }
        let (reply, done) = oneshot::channel();
        if self.writer.send(Command::Append(frame, reply)).is_err() {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            return Err(unavailable("the writer thread stopped"));
        }
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(&format!("cannot write to {}: {e}", self.dir.display()))),
            Err(_) => Err(unavailable("the writer thread stopped")),
        }
    }

    async fn status(&self) -> Result<SpoolStatus, SpoolError> {
        let dir = self.dir.clone();
        let (oldest_at, set_aside) = tokio::task::spawn_blocking(move || scan_status(&dir))
            .await
            .map_err(|e| unavailable(&e.to_string()))?
            .map_err(|e| unavailable(&e.to_string()))?;
        Ok(SpoolStatus {
            backend: "file",
            location: self.dir.display().to_string(),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            max_bytes: self.max_bytes,
            oldest_at,
            set_aside,
        })
    }

    async fn drain(&self, store: &dyn Store, stop: Stop<'_>) -> Result<DrainReport, SpoolError> {
        let mut resume = self.resume.lock().await;
        let mut report = DrainReport::default();
        let dir = self.dir.clone();
        let list = blocking(move || segments(&dir)).await?;
        if self.records.load(Ordering::Relaxed) == 0 && list.is_empty() {
            return Ok(report);
        }
        let sealed_below = self.seal().await?;
        let dir = self.dir.clone();
        let list = blocking(move || segments(&dir)).await?;
        for (number, path) in list.into_iter().filter(|(n, _)| *n < sealed_below) {
            let data = tokio::fs::read(&path).await.map_err(|e| unavailable(&e.to_string()))?;
            let start = resume.as_ref().filter(|r| r.segment == number).map_or(0, |r| r.offset);
            for found in frame::frames(&data, start) {
                if stop() {
                    report.stopped = Some("shutting down".into());
                    return Ok(report);
                }
                let end = match found {
                    Frame::Record { offset, end, payload } => {
                        let mut verdict = apply(store, payload).await;
                        if let Verdict::Stop(why) = &verdict {
                            let stops = resume.as_ref().filter(|r| (r.segment, r.offset) == (number, offset));
                            let stops = stops.map_or(0, |r| r.stops) + 1;
                            if stops < MAX_STOPS {
                                *resume = Some(Resume { segment: number, offset, stops });
                                report.stopped = Some(why.clone());
                                return Ok(report);
                            }
                            verdict = Verdict::SetAside(format!(
                                "failed {stops} drains in a row while the store answered: {why}"
                            ));
                        }
                        if let Verdict::SetAside(error) = &verdict {
                            self.set_aside(number, offset, error, payload).await?;
                        }
                        report.count("file", &verdict);
                        subtract(&self.records, 1);
                        end
                    }
                    Frame::Corrupt { offset, end, reason } => {
                        self.set_aside(number, offset, reason, &data[offset..end]).await?;
                        report.count_corrupt("file", reason, end - offset);
                        end
                    }
                };
                *resume = Some(Resume { segment: number, offset: end, stops: 0 });
            }
            let dir = self.dir.clone();
            blocking(move || fs::remove_file(&path).and_then(|_| sync_dir(&dir))).await?;
            subtract(&self.bytes, data.len() as u64);
            *resume = None;
        }
        Ok(report)
    }
}

/// Runs file-system work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| unavailable(&e.to_string()))?
        .map_err(|e| unavailable(&e.to_string()))
}

/// The oldest record's time and the number of set-aside entries.
fn scan_status(dir: &Path) -> std::io::Result<(Option<chrono::DateTime<chrono::Utc>>, u64)> {
    let mut oldest = None;
    'segments: for (_, path) in segments(dir)? {
        // The first record is at the start: a callback body is far below 1 MiB.
        let mut data = vec![];
        File::open(path)?.take(1024 * 1024).read_to_end(&mut data)?;
        for found in frame::frames(&data, 0) {
            if let Frame::Record { payload, .. } = found {
                if let Ok(record) = serde_json::from_slice::<Record>(payload) {
                    oldest = Some(record.spooled_at);
                    break 'segments;
                }
            }
        }
    }
    let set_aside = fs::read_dir(dir.join(SET_ASIDE)).map_or(0, |d| d.count() as u64);
    Ok((oldest, set_aside))
}
