//! Build script of the svtpm image: nothing to do on the host yet.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
