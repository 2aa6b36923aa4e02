//! Locks between processes, so that runs can start at the same time: one lock per stage folder,
//! per run folder and per SynthCUB generation.
//!
//! A lock is a file created with `create_new` (the claim: exactly one process succeeds) holding
//! the holder's pid, host and start time. While held, a thread rewrites the file's bytes in place
//! every [`HEARTBEAT`], which moves its modification time. The file is removed when the [`Lock`]
//! is dropped (on success and on error). A lock is *stale*, and taken over, when
//!
//! - its holder ran on this host and its pid no longer runs (read from `/proc`), or
//! - its file has not been refreshed for [`STALE_AFTER`] (a holder on another host that died, or
//!   a host without `/proc`).
//!
//! Taking over a stale lock happens under a second, short-lived `<lock>.break` file, so two
//! waiters never remove each other's fresh lock.
//!
//! # Shared storage (NFS and the like)
//!
//! Processes on several machines may share one results folder. What is assumed of its file
//! system: an exclusive create (`O_CREAT | O_EXCL`, what `create_new` asks for) succeeds for one
//! process only — true of local file systems, of NFSv3 and NFSv4 (not NFSv2), and of Lustre,
//! GPFS and BeeGFS; `mkdir` and a rename within a folder are atomic (run ids, finished files);
//! host names differ between the machines, and processes on one host see each other in `/proc`
//! (else a dead holder is only noticed by its age). Clocks need not agree: a lock's age is its
//! modification time against the file system's own clock — a probe file's modification time,
//! created beside the lock when the local clock says the lock may be stale — and the heartbeat
//! writes the file rather than setting a time, so the file server stamps it. Cached attributes
//! (NFS caches them up to a minute by default) make a lock look older by that much at most, far
//! below [`STALE_AFTER`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// How often a held lock's file is touched.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A lock not touched for this long is stale whatever its host (ten heartbeats).
pub const STALE_AFTER: Duration = Duration::from_secs(300);
/// How long a `.break` file may live before it is itself stale.
const BREAK_STALE_AFTER: Duration = Duration::from_secs(30);
/// How often a waiting process looks again.
const POLL: Duration = Duration::from_millis(200);

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// What this process wrote into the file.
    text: String,
    heartbeat: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// Who holds a lock, as written in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    pid: u32,
    host: String,
    started: u64,
}

impl Holder {
    fn me() -> Holder {
        Holder { pid: std::process::id(), host: host(), started: now_secs() }
    }

    fn text(&self) -> String {
        format!("pid {}\nhost {}\nstarted {}\n", self.pid, self.host, self.started)
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut pid = None;
        let mut host = None;
        let mut started = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", v)) => pid = v.trim().parse().ok(),
                Some(("host", v)) => host = Some(v.trim().to_string()),
                Some(("started", v)) => started = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(Holder { pid: pid?, host: host?, started: started? })
    }

    /// Whether this holder is known to be dead: on this host, with `/proc`, and its pid gone.
    fn is_dead(&self) -> bool {
        let proc = Path::new("/proc");
        self.host == host()
            && proc.join("self").exists()
            && !proc.join(self.pid.to_string()).exists()
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME`), or `unknown`.
pub(crate) fn host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How long ago `path` was last modified, by this machine's clock (`None` when it cannot be
/// read, e.g. it is gone).
fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(SystemTime::now().duration_since(modified).unwrap_or_default())
}

/// Whether the lock at `path` has gone unrefreshed for longer than [`STALE_AFTER`]. Judged by the
/// file system's clock when this machine's clock says it may be: on shared storage the two can
/// disagree by minutes, and a fresh lock of another host must not look stale.
fn unrefreshed(path: &Path) -> bool {
    if age(path).is_none_or(|a| a <= STALE_AFTER / 2) {
        return false;
    }
    let Ok(lock) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    // A probe beside the lock: its modification time is the file system's "now".
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let probe = path.with_file_name(format!("{name}.clock-{}-{}", host(), std::process::id()));
    let now = std::fs::File::create(&probe).and_then(|f| f.metadata()).and_then(|m| m.modified());
    let _ = std::fs::remove_file(&probe);
    match now {
        Ok(now) => now.duration_since(lock).is_ok_and(|a| a > STALE_AFTER),
        // No probe (a read-only folder): this machine's clock.
        Err(_) => age(path).is_some_and(|a| a > STALE_AFTER),
    }
}

/// Take the lock at `path`, waiting while another live process holds it. `what` names what is
/// locked in the one message printed when this process has to wait.
pub fn acquire(path: &Path, what: &str) -> Result<Lock> {
    let mut told = false;
    loop {
        match try_acquire(path)? {
            Ok(lock) => return Ok(lock),
            Err(holder) => {
                if !told {
                    eprintln!(
                        "  waiting for {what}: another process holds {} ({holder}); this one \
                         continues when it finishes (a lock whose process died is taken over)",
                        path.display()
                    );
                    told = true;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// One attempt at the lock at `path`: the lock, or who holds it (in words). A stale lock is
/// taken over.
pub fn try_acquire(path: &Path) -> Result<std::result::Result<Lock, String>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for _ in 0..2 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut file) => {
                let text = Holder::me().text();
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing the lock {}", path.display()))?;
                return Ok(Ok(Lock::held(path, file, text)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let holder = Holder::parse(&text);
                let stale = holder.as_ref().is_some_and(Holder::is_dead) || unrefreshed(path);
                if !stale || !break_stale(path, &text)? {
                    return Ok(Err(holder.map_or_else(
                        || "just being taken".to_string(),
                        |h| {
                            format!(
                                "pid {} on {}, for {} s",
                                h.pid,
                                h.host,
                                now_secs().saturating_sub(h.started)
                            )
                        },
                    )));
                }
                // The stale lock is gone: try again.
            }
            Err(e) => {
                return Err(e).with_context(|| format!("creating the lock {}", path.display()));
            }
        }
    }
    Ok(Err("taken over by another waiter".into()))
}

/// Remove the stale lock at `path` whose text was `seen`, under `<path>.break`; whether it was
/// removed (false when another process is breaking it, or it changed meanwhile).
fn break_stale(path: &Path, seen: &str) -> Result<bool> {
    let guard = path.with_file_name(format!(
        "{}.break",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    if std::fs::OpenOptions::new().write(true).create_new(true).open(&guard).is_err() {
        if age(&guard).is_some_and(|a| a > BREAK_STALE_AFTER) {
            let _ = std::fs::remove_file(&guard);
        }
        return Ok(false);
    }
    let still = std::fs::read_to_string(path).unwrap_or_default() == seen;
    let removed = still && std::fs::remove_file(path).is_ok();
    let _ = std::fs::remove_file(&guard);
    Ok(removed)
}

impl Lock {
    /// The lock at `path`, just created as `file` holding `text`; its heartbeat starts. The
    /// heartbeat writes through `file`, never the path: a lock taken over meanwhile (its holder
    /// stalled past [`STALE_AFTER`]) belongs to another process and is left alone.
    fn held(path: &Path, mut file: std::fs::File, text: String) -> Lock {
        use std::io::{Seek, SeekFrom};
        let (tx, rx) = mpsc::channel::<()>();
        let mine = text.clone();
        let beat = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                // The same bytes again: the file system stamps the write with its own clock.
                let _ = file
                    .seek(SeekFrom::Start(0))
                    .and_then(|_| file.write_all(text.as_bytes()))
                    .and_then(|()| file.sync_data());
            }
        });
        Lock { path: path.to_path_buf(), text: mine, heartbeat: Some((tx, beat)) }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some((tx, beat)) = self.heartbeat.take() {
            drop(tx);
            let _ = beat.join();
        }
        // Only while it is still ours (not taken over after a stall).
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t == self.text) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The lock file beside `path` (a folder): `.NAME.lock` in the same parent.
pub fn beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_and_released_on_drop() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("a/x.lock");
        let lock = try_acquire(&path).expect("io").expect("free");
        let text = std::fs::read_to_string(&path).expect("lock file");
        assert_eq!(Holder::parse(&text).map(|h| h.pid), Some(std::process::id()));
        let held = try_acquire(&path).expect("io").expect_err("held by a live pid");
        assert!(held.contains(&format!("pid {}", std::process::id())), "{held}");
        drop(lock);
        assert!(!path.exists());
        assert!(try_acquire(&path).expect("io").is_ok());
    }

    #[test]
    fn a_lock_taken_over_meanwhile_is_left_to_its_new_holder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("x.lock");
        let lock = try_acquire(&path).expect("io").expect("free");
        // Another process broke this (stalled) holder's lock and took it.
        let other = Holder { pid: 1, host: "elsewhere".into(), started: 2 };
        std::fs::remove_file(&path).expect("break");
        std::fs::write(&path, other.text()).expect("take over");
        drop(lock);
        assert_eq!(std::fs::read_to_string(&path).expect("still there"), other.text());
    }

    #[test]
    fn a_lock_of_a_dead_process_or_past_its_timeout_is_taken_over() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("x.lock");
        // A pid above Linux's maximum (2^22) never runs.
        let dead = Holder { pid: 4_194_304 + 7, host: host(), started: 1 };
        std::fs::write(&path, dead.text()).expect("write");
        let lock = try_acquire(&path).expect("io").expect("taken over");
        drop(lock);
        // Another host, alive as far as we know, but not refreshed for longer than STALE_AFTER.
        let elsewhere = Holder { pid: 1, host: "elsewhere".into(), started: 1 };
        std::fs::write(&path, elsewhere.text()).expect("write");
        assert!(try_acquire(&path).expect("io").is_err(), "fresh lock of another host is held");
        let f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.set_modified(SystemTime::now() - STALE_AFTER - Duration::from_secs(1)).expect("mtime");
        assert!(try_acquire(&path).expect("io").is_ok());
    }
}
