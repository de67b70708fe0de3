//! `threadline completions SHELL`: a completion script of every command and flag.

use std::io;

use clap::Command;
use clap_complete::Shell;

use crate::args::{Args, Spec};
use crate::{COMMANDS, Failure};

/// `threadline completions`.
pub static COMPLETIONS: Spec = Spec {
    command: "completions",
    positionals: &["bash|zsh|fish|elvish|powershell"],
    optional: &[],
    options: &[],
    switches: &[],
    filters: false,
    database: false,
    config: false,
    help: "usage: threadline completions bash|zsh|fish|elvish|powershell

Prints a completion script of every command and flag for the shell, for example:
  threadline completions bash > ~/.local/share/bash-completion/completions/threadline
  threadline completions zsh > \"${fpath[1]}/_threadline\"
  threadline completions fish > ~/.config/fish/completions/threadline.fish
",
};

/// The shells a script can be printed for.
const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "elvish", "powershell"];

/// Every command, as clap declares it.
fn cli() -> Command {
    COMMANDS
        .iter()
        .map(|(spec, _)| spec.command())
        .chain(["install-sql", "uninstall-sql"].map(|name| Command::new(name).disable_help_flag(true)))
        .fold(
            Command::new("threadline")
                .version(env!("CARGO_PKG_VERSION"))
                .disable_help_subcommand(true),
            Command::subcommand,
        )
}

/// Runs `threadline completions`.
pub fn completions(args: &Args) -> Result<(), Failure> {
    let shell: Shell = args
        .subcommand("shell", &SHELLS)?
        .parse()
        .map_err(|e: String| args.usage(e))?;
    clap_complete::generate(shell, &mut cli(), "threadline", &mut io::stdout().lock());
    Ok(())
}
