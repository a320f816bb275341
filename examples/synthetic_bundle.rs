//! Writes a generated bundle of N policies to a directory, for load runs against `baton serve`.
//!
//! ```text
//! cargo run --release --example synthetic_bundle -- 10000 /tmp/bundle-10k
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // each user takes only part of it
#[path = "../tests/support/synthetic.rs"]
mod synthetic;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: synthetic_bundle <policies> <dir>");
    let dir = std::path::PathBuf::from(
        args.next()
            .expect("usage: synthetic_bundle <policies> <dir>"),
    );
    let bundle = synthetic::bundle(n);
    std::fs::create_dir_all(&dir).unwrap();
    for file in bundle.sources() {
        std::fs::write(dir.join(&file.name), &file.text).unwrap();
    }
    println!(
        "wrote {} policies over {} agents to {} (version {})",
        bundle.policy_count(),
        synthetic::agents_for(n),
        dir.display(),
        bundle.version()
    );
}
