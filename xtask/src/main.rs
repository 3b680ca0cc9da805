//! Developer tasks for svtpm (placeholder until the xtask work lands).
fn main() {}
