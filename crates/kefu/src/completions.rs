//! `kefu completions SHELL`: the shell's completion script for every command and flag.

use std::io::Write as _;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Flags of `kefu completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell (bash, zsh, fish, elvish, powershell).
    shell: Shell,
}

/// Writes the script to standard output.
pub(crate) fn run(args: &CompletionsArgs) -> Result<(), String> {
    let mut command = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "kefu", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| format!("cannot write the script: {e}"))
}
