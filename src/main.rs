//! The `eksaudit` binary: runs the command line and turns its result into an
//! exit code. Errors are printed once, as one line with their causes.

use std::process::ExitCode;

fn main() -> ExitCode {
    match eksaudit::cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            let broken_pipe = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("eksaudit: {e:#}");
            if eksaudit::cli::verbose() {
                for cause in e.chain() {
                    if let Some(eksaudit::Error::CloudWatch { detail, .. }) =
                        cause.downcast_ref::<eksaudit::Error>()
                    {
                        eprintln!("eksaudit: detail: {detail}");
                    }
                }
            }
            ExitCode::from(2)
        }
    }
}
