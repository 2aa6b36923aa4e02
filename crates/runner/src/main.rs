//! `embcam`: the EmbeddingCAM harness's command line. A thin `main`: parse, dispatch, print
//! `Error: …` with its causes and exit non-zero on failure.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bench;
mod cli;
mod commands;
mod compare;
mod config;
mod gallery;
mod lock;
mod pipeline;
mod plots;
mod progress;
mod report;
mod run;
mod store;
mod table;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
