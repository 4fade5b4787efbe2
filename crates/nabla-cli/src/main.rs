//! `nabla`: runs the experiments of the nabla zoo.
//!
//! `nabla` alone runs a short tour; `nabla list` lists experiments; `nabla run NAME` runs one.

mod cli;
mod heatmap;
mod plot;
mod progress;
mod run;
mod tour;

use std::process::ExitCode;

/// A library cannot choose the allocator; a program can. Recorded computations allocate and free
/// small tensors in bursts, which mimalloc serves much faster than the system allocator (see
/// docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Bad input is reported as one line by the code below; a panic is a bug in nabla, not the
    // user's fault: say so in one line too.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("internal error (a bug in nabla, please report it): {msg}{at}");
    }));
    match cli::main(std::env::args_os().collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
