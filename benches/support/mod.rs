//! What the bench binaries share: settings from the environment, and
//! servers run in a child process (this binary again, in server mode), so
//! that a bench measures weir's own CPU time and memory.

// Each bench uses some of these.
#![allow(dead_code)]

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

/// `name` from the environment as a number, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Set in the child: it serves instead of benchmarking.
const SERVE: &str = "WEIR_BENCH_SERVE";

/// This binary running as a server in a child process, until dropped.
pub struct ChildServer {
    child: Child,
    /// The first line it printed (its URLs).
    pub line: String,
}

impl ChildServer {
    /// Whether this process is the child that serves.
    pub fn is_child() -> bool {
        std::env::var_os(SERVE).is_some()
    }

    /// Starts the child and reads its first line.
    pub fn start() -> std::io::Result<ChildServer> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(SERVE, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        Ok(ChildServer {
            child,
            line: line.trim().to_string(),
        })
    }

    /// In the child: prints `line` for the parent, then serves until the
    /// parent closes its stdin.
    pub async fn announce_and_wait(line: &str) {
        println!("{line}");
        tokio::task::spawn_blocking(|| {
            let mut rest = String::new();
            let _ = std::io::stdin().lock().read_line(&mut rest);
        })
        .await
        .expect("the stdin reader does not panic");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
