//! `dlm generate man` and `dlm generate completions SHELL`: dlm's man page
//! (roff) and shell completions on stdout, generated from the clap
//! definitions in `main.rs`, for packaging. Hidden: not a subcommand of
//! [`Cli`], so `dlm --help` does not show it; `main` asks here first.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use clap_complete::Shell;

use super::Cli;

/// Generate dlm's man page or shell completions.
#[derive(Debug, Parser)]
#[command(name = "dlm generate")]
struct Generate {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// The man page, dlm.1, in roff.
    Man,
    /// Completions for SHELL.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// When the command line is `dlm generate ...`, does it and returns the
/// exit status; otherwise `None`.
pub fn if_asked() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    let program = args.next()?;
    if args.next()? != "generate" {
        return None;
    }
    let generate = match Generate::try_parse_from(std::iter::once(program).chain(args)) {
        Ok(generate) => generate,
        Err(e) => {
            let _ = e.print();
            return Some(ExitCode::from(2));
        }
    };
    let mut out = std::io::stdout().lock();
    let result = match generate.what {
        What::Man => clap_mangen::Man::new(Cli::command()).render(&mut out),
        What::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "dlm", &mut out);
            Ok(())
        }
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("dlm: {e}");
            Some(ExitCode::from(1))
        }
    }
}
