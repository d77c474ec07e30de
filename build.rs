//! Lists the shipped alert rules and their test events (`alerts/*.yaml`,
//! `alerts/*.ndjson`) for `include!`, so a new rule file is compiled in
//! without editing code.

use std::fmt::Write;
use std::path::Path;

fn main() {
    // A position-dependent executable: the dynamic loader then has no
    // relocations to apply at start (a PIE build has ~300,000, 6 ms of
    // every run, most of a small lake query). Only the binaries' link
    // changes; the libraries are built as before.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
    // Read when the script runs, not baked in when it is compiled: the
    // target folder is shared by checkouts at other paths (CI clones), and
    // a script compiled for one of them would list another's rules.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join("alerts");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml") || n.ends_with(".ndjson"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("[\n");
    for n in &names {
        let path = dir.join(n);
        writeln!(
            out,
            "    ({n:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push(']');
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("builtin_alerts.rs");
    std::fs::write(dest, out).expect("writing into OUT_DIR");
}
