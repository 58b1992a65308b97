//! `rmx`: parse arguments, run the subcommand, map the outcome to an exit code
//! (0 all done, 1 some input records rejected, 2 fatal error).
mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(outcome) if outcome.rejected == 0 => ExitCode::from(0),
        Ok(outcome) => {
            eprintln!("rmx: {} input record(s) rejected", outcome.rejected);
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("rmx: error: {e}");
            ExitCode::from(2)
        }
    }
}
