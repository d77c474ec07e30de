//! Crash tests: `EKSAUDIT_FAILPOINT=NAME:N` aborts the process the N-th
//! time it passes the point NAME (as a SIGKILL would, at exactly the
//! moment a test needs). Unset, it costs one environment lookup a call.

use std::sync::atomic::{AtomicU64, Ordering};

pub fn hit(name: &str) {
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("EKSAUDIT_FAILPOINT") else {
        return;
    };
    let Some((point, n)) = spec.split_once(':') else {
        return;
    };
    if point == name && n.parse() == Ok(PASSED.fetch_add(1, Ordering::SeqCst) + 1) {
        eprintln!("eksaudit: failpoint {name}: aborting");
        std::process::abort();
    }
}
