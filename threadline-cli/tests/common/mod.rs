//! Helpers shared by the CLI test binaries: running the `threadline` binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// What one run of the command printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success; returns the standard output.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        &self.stdout
    }

    /// The standard output as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Asserts a failure with `code` whose message contains `text`.
    pub fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.starts_with("threadline: "), "{self:?}");
        assert!(self.stderr.contains(text), "expected {text:?} in {self:?}");
    }
}

/// Runs `threadline` with `args`, never reading `DATABASE_URL` from the environment.
pub fn threadline(args: &[impl AsRef<std::ffi::OsStr>]) -> Run {
    threadline_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs `threadline` with `args` in the folder `dir`, as [`threadline`] does.
pub fn threadline_in(dir: &Path, args: &[impl AsRef<std::ffi::OsStr>]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_threadline"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run threadline");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}
