use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(dsync::cli::main())
}
