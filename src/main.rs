//! The `weir` binary.

/// The CLI's `println!`: std's panics when stdout is a pipe whose reader
/// has gone (`weir skill inspect | head`); this one ends weir quietly
/// instead, with the status a process killed by SIGPIPE has (128 + 13), as
/// other Unix tools do. Defined before `mod cli` so it shadows std's macro
/// in every command.
macro_rules! println {
    () => {
        $crate::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::print_line(format_args!($($arg)*))
    };
}

mod cli;

/// mimalloc instead of glibc's malloc: a task allocates and frees many small
/// objects across two worker threads (events, payloads, host-call strings,
/// wasmtime's per-instance bookkeeping), and glibc's arenas spent about a
/// tenth of the CPU of `weir run` on them (BENCHMARKS.md, the hot path).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes one line to stdout; a closed pipe ends the process (see
/// `println!` above), any other failure is reported and ends it too.
fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("weir: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The embedded provider's quantized matmuls spin-wait for their worker
    // threads, which collapses on small machines; one thread is several times
    // faster there. Set before any thread exists, so the write is sound.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: no other thread has been started yet.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("weir: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weir: {e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    // The command is done (outputs written, journal synced). Dropping the
    // runtime would wait for its blocking threads, one of which may sit in
    // a read of an idle stdin that weir stopped taking (a failed journal):
    // give them a moment, then exit without them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}
