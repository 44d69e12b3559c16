//! The server under test: the same entry point as the `weir` binary, built inside this package so
//! that `cargo test` always runs the current code.
fn main() -> std::process::ExitCode {
    weir_server::cli::main()
}
