//! The `securecart` binary: everything happens in the library.

fn main() {
    std::process::exit(securecart::run());
}
