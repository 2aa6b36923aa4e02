//! Progress bars (indicatif) in one style for every long stage; the library crates report to them
//! through [`embcam_cub::Progress`].

use std::ops::Deref;

use embcam_cub::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar the libraries can report to.
pub struct Bar(ProgressBar);

/// A bar for `what`, drawn on stderr (hidden when stderr is not a terminal, by indicatif).
pub fn bar(what: &str) -> Bar {
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    Bar(ProgressBar::new(0).with_style(style).with_prefix(what.to_string()))
}

impl Deref for Bar {
    type Target = ProgressBar;

    fn deref(&self) -> &ProgressBar {
        &self.0
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn status(&self, line: &str) {
        self.0.set_message(line.to_string());
    }
}
