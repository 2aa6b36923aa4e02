//! `embcam`: the EmbeddingCAM harness's command line. A thin `main`: parse, dispatch, print
//! `Error: …` with its causes and exit non-zero on failure.

mod cli;
mod config;
mod pipeline;
mod plots;
mod store;
mod table;
mod commands;
mod progress;
mod run;

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
