//! svtpm-sim (placeholder until the simulator work lands).
fn main() {}
