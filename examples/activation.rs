//! What activating a bundle costs: the admission (parse, validate, index, run its tests) and the
//! swap itself, timed over several runs, and the resident memory the active bundle holds.
//!
//! ```text
//! cargo run --release --example activation -- 1000 10000 100000
//! ```
//!
//! Each size runs in a fresh process of its own, so resident memory is measured from a clean
//! start; the parent prints one line per size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // each user takes only part of it
#[path = "../tests/support/synthetic.rs"]
mod synthetic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::admission::{BundleLimits, admit};
use baton::decision::DecisionSettings;
use baton::pipeline::{Parts, Pipeline};
use baton::policy_store::replica::Activation as _;

const RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, n] = args.as_slice()
        && flag == "--one"
    {
        measure(n.parse().expect("a policy count"));
        return;
    }
    let sizes = if args.is_empty() {
        vec!["1000".to_owned(), "10000".to_owned(), "100000".to_owned()]
    } else {
        args
    };
    for n in sizes {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--one", &n])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn measure(n: usize) {
    let files = synthetic::bundle(n).sources().to_vec();
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    let settings = DecisionSettings::default();
    let limits = BundleLimits {
        max_bytes: usize::MAX,
        max_policies: usize::MAX,
    };
    // Activation flushes the caches, which needs a runtime to retire a shared tier in.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let state = Pipeline::new(Parts::embedded(
        synthetic::bundle(8),
        DecisionSettings::default(),
    ));

    let rss_before = rss_bytes();
    let mut admissions = Vec::new();
    let mut swaps = Vec::new();
    let mut rss_after = 0;
    for run in 0..RUNS {
        let started = Instant::now();
        let admitted = admit(files.clone(), &settings, &limits).unwrap();
        admissions.push(started.elapsed());
        let bundle = Arc::new(admitted.bundle);
        let started = Instant::now();
        let previous = state.activate(bundle);
        swaps.push(started.elapsed());
        if run == 0 {
            // The tiny starting bundle is all that was replaced; what grew is the new one.
            rss_after = rss_bytes();
        }
        drop(previous);
    }
    println!(
        "{:>7} policies ({:>6.1} MiB of source): activation median {:>9.1} ms (min {:.1}, max {:.1}), swap median {:>5} ns, resident memory +{:.1} MiB",
        state.bundle().policy_count(),
        bytes as f64 / (1024.0 * 1024.0),
        ms(median(&mut admissions)),
        ms(*admissions.iter().min().unwrap()),
        ms(*admissions.iter().max().unwrap()),
        median(&mut swaps).as_nanos(),
        rss_after.saturating_sub(rss_before) as f64 / (1024.0 * 1024.0),
    );
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Resident set size, from `/proc/self/statm` (pages).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
