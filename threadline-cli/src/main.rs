//! The `threadline` command.
//!
//! This release prints the schema SQL, for installing Threadline with psql or any
//! migration tool: `threadline install-sql | psql "$DATABASE_URL"`.

use std::process::ExitCode;

const USAGE: &str = "usage: threadline <command>

commands:
  install-sql     print the SQL that installs the threadline schema
  uninstall-sql   print the SQL that removes it, with every audit row
  --version       print the version
  --help          print this help";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["install-sql"] => print!("{}", threadline::schema::INSTALL_SQL),
        ["uninstall-sql"] => print!("{}", threadline::schema::UNINSTALL_SQL),
        ["--version" | "-V"] => println!("threadline {}", env!("CARGO_PKG_VERSION")),
        ["--help" | "-h"] => println!("{USAGE}"),
        _ => {
            eprintln!("threadline: unknown command {args:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
