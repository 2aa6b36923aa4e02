//! Progress bars (indicatif) in one style for every long stage.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `what`, drawn on stderr (hidden when stderr is not a terminal, by indicatif).
pub fn bar(what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(0).with_style(style).with_prefix(what.to_string())
}
