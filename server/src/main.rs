//! The `weir` binary: see `weir --help`.
fn main() -> std::process::ExitCode {
    weir_server::cli::main()
}
