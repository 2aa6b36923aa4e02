//! `embcam`: the EmbeddingCAM harness's command line. A thin `main`: parse, dispatch, print
//! `Error: …` with its causes and exit non-zero on failure.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod cli;
mod commands;
mod compare;
mod config;
mod gallery;
mod jobs;
mod lock;
mod pipeline;
mod plots;
mod progress;
mod report;
mod run;
mod slurm;
mod store;
mod table;

use clap::Parser;

fn main() -> std::process::ExitCode {
    embcam_model::kernels::tune_allocator();
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, as anyhow's `{:#}`, but a cause whose text the
/// message already holds is left out: library errors often print their source in their own
/// message (`reading X: No such file or directory (os error 2)`) and return it as the source too.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source in its own message and also returns it as `source()`.
    #[derive(Debug)]
    struct Wrapping(std::io::Error);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading images.txt: {}", self.0)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let e = anyhow::Error::new(Wrapping(io)).context("loading the dataset");
        assert_eq!(e.chain().count(), 3);
        assert_eq!(
            message(&e),
            "loading the dataset: reading images.txt: No such file (os error 2)"
        );
        // Causes not yet in the message are kept, in order, as `{:#}` prints them.
        let plain = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(message(&plain), format!("{plain:#}"));
    }
}
