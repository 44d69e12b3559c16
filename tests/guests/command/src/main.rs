//! A WASI command (exports wasi:cli/run), which the broker must refuse as a processor.
fn main() {
    println!("I am not a processor");
}
