fn main() {
    println!("despina {}", env!("CARGO_PKG_VERSION"));
}
