//! The log sink of the `seed` and `peer` programs: stdout plus a shared, append-only file.
//!
//! Several processes append to one output file. Each line is written with a single `write`
//! call on a file opened with `O_APPEND`, so the kernel places every line whole at the end of
//! the file: lines of different processes interleave, never their bytes. For the same
//! reason a process killed by a signal (SIGINT, SIGTERM, SIGKILL) leaves no torn line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

use gossip_core::{Event, Millis};

use crate::host::Observer;
use crate::render::{self, Level, Role};

/// Writes rendered event lines to stdout and appends them to a file.
#[derive(Debug)]
pub struct OutputLog {
    file: Option<File>,
    stdout: bool,
    line: Vec<u8>,
}

impl OutputLog {
    /// Appends to `path` (created if missing) and echoes to stdout when `stdout` is true.
    pub fn open(path: &Path, stdout: bool) -> io::Result<OutputLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(OutputLog {
            file: Some(file),
            stdout,
            line: Vec::with_capacity(256),
        })
    }

    /// Logs to stdout only (or nowhere).
    pub fn stdout_only(stdout: bool) -> OutputLog {
        OutputLog {
            file: None,
            stdout,
            line: Vec::new(),
        }
    }

    /// Writes one line (a `\n` is added) with one `write` per destination.
    pub fn write_line(&mut self, text: &str) {
        self.line.clear();
        self.line.extend_from_slice(text.as_bytes());
        self.line.push(b'\n');
        if self.stdout {
            let mut out = io::stdout().lock();
            // A closed stdout (the reader went away) must not stop the node.
            let _ = out.write_all(&self.line).and_then(|()| out.flush());
        }
        if let Some(file) = &mut self.file {
            match file.write(&self.line) {
                Ok(n) if n == self.line.len() => {}
                Ok(n) => log::warn!("output file: short write ({n} of {})", self.line.len()),
                Err(e) => log::warn!("output file: {e}"),
            }
        }
    }
}

impl Observer for OutputLog {
    fn on_event(&mut self, role: Role, me: SocketAddr, unix_ms: u64, _now: Millis, event: &Event) {
        let (level, text) = render::render(event);
        let tag = render::tag(role, me, unix_ms);
        match level {
            Level::Output => self.write_line(&format!("{text} {tag}")),
            Level::Detail => log::debug!("{text} {tag}"),
        }
    }
}
