//! How a long operation reports its progress to its caller, who may draw it (the runner owns the
//! progress bars; the library crates never print).

/// The receiver of a long operation's progress: every library crate's long operations take a
/// `&dyn Progress`. It is shared between worker threads, so it is `Sync`.
pub trait Progress: Sync {
    /// A pass of `total` units begins (the caller's count restarts from zero).
    fn start(&self, total: u64);
    /// `n` more units of the current pass are done.
    fn advance(&self, n: u64);
    /// A one-line status of the work (training: epoch, running loss, speed); ignored by default.
    fn status(&self, _line: &str) {}
}

/// Progress that goes nowhere: `&Silent` where nobody watches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _total: u64) {}
    fn advance(&self, _n: u64) {}
}
