//! The svtpm image entry point (placeholder until the image work lands).
fn main() {
    eprintln!("the svtpm image runs only on x86_64-unknown-none");
}
