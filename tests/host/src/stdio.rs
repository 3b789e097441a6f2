//! Guest stdout/stderr, forwarded line by line to the host's stderr with a
//! `[component-id]` prefix, so interleaved output from several components
//! in one test run stays attributable. Like `spin up`, each component's
//! output is also appended to `<state dir>/logs/<component>_stdout.txt`
//! (and `_stderr.txt`), where a developer finds, say, the local mail log.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A `StdoutStream` for one component's stdout or stderr.
pub struct PrefixedOutput {
    prefix: String,
    log_file: Option<std::path::PathBuf>,
}

impl PrefixedOutput {
    /// Output of `component_id`, also appended to `log_file` if given.
    pub fn new(component_id: &str, log_file: Option<std::path::PathBuf>) -> PrefixedOutput {
        PrefixedOutput {
            prefix: format!("[{component_id}] "),
            log_file,
        }
    }
}

/// The log file at `path`, opened once for the host's lifetime and shared
/// by every request's output stream (a request must not cost two opens).
fn open_log(path: &std::path::Path) -> Option<std::sync::Arc<std::fs::File>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static OPEN: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<std::fs::File>>>> = OnceLock::new();
    let mut open = OPEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(file) = open.get(path) {
        return Some(file.clone());
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = Arc::new(std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?);
    open.insert(path.to_path_buf(), file.clone());
    Some(file)
}

/// Where `spin up` keeps a component's output: `logs/<id>_<stream>.txt`.
pub fn log_path(state_dir: &std::path::Path, component_id: &str, stream: &str) -> std::path::PathBuf {
    state_dir.join("logs").join(format!("{component_id}_{stream}.txt"))
}

impl IsTerminal for PrefixedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PrefixedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        let file = self.log_file.as_deref().and_then(open_log);
        Box::new(LineWriter {
            prefix: self.prefix.clone(),
            pending: Vec::new(),
            file,
        })
    }
}

/// Buffers a partial line until its newline arrives (or the stream ends),
/// so each host stderr line carries exactly one prefix.
struct LineWriter {
    prefix: String,
    pending: Vec<u8>,
    file: Option<std::sync::Arc<std::fs::File>>,
}

impl LineWriter {
    fn emit_complete_lines(&mut self) {
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.emit(&line);
        }
    }

    fn emit(&mut self, line: &[u8]) {
        if let Some(file) = &self.file {
            // One write per line, so lines from concurrent requests never interleave.
            let mut whole = line.to_vec();
            if !whole.ends_with(b"\n") {
                whole.push(b'\n');
            }
            let _ = (&**file).write_all(&whole);
        }
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(self.prefix.as_bytes());
        let _ = stderr.write_all(line);
        if !line.ends_with(b"\n") {
            let _ = stderr.write_all(b"\n");
        }
    }

    fn emit_rest(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.emit_complete_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit_rest();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit_rest();
    }
}
