//! `svtpm-proxy`: the host end of svtpm's host channel (work in progress).

fn main() {
    eprintln!("svtpm-proxy: not built yet");
    std::process::exit(2);
}
