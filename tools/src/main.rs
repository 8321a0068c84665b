//! `fixnet`: the host command-line tool.

use std::process::ExitCode;

fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one line rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "error: internal error: {}",
            info.to_string().replace('\n', " ")
        );
    }));
    match fixnet_tools::cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            // One line, the whole chain of context: "error: model.fxn: invalid ...: ...".
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
