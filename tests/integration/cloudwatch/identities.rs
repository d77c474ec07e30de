//! `identities`, `rbac suggest` and `report` pulling from CloudWatch Logs
//! give what they give over the same events in a file.

use eksaudit::synth::ndjson;

use super::{Moto, now_ms, stdout};

#[test]
fn identities_and_rbac_from_cloudwatch_match_the_file() {
    let moto = Moto::start();
    moto.put(
        "/aws/eks/gamma/cluster",
        &[("kube-apiserver-audit-g", 4_000)],
        now_ms() - 10 * 60_000,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("same.ndjson");
    // The events `put` wrote: stream 0 is seed 1.
    std::fs::write(&file, ndjson(4_000, 1)).unwrap();
    let file = file.display().to_string();
    let run = |args: &[&str], source: &[&str]| {
        let cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eksaudit"));
        let out = if source[0] == "--cloudwatch" {
            moto.eksaudit(&[args, source, &["--since", "1h"]].concat())
                .output()
        } else {
            let mut cmd = cmd;
            cmd.args(args).args(source).output()
        }
        .unwrap();
        stdout(&out)
    };
    let cw = ["--cloudwatch", "gamma"];
    let by_file = [file.as_str()];
    for args in [
        &["identities", "-q", "--format", "csv"][..],
        &["identities", "-q", "--by-arn", "--format", "json"][..],
        &["rbac", "suggest", "-q", "--users", ".*"][..],
    ] {
        let (a, b) = (run(args, &cw), run(args, &by_file));
        assert!(a.len() > 1000, "{args:?}: {a}");
        assert_eq!(a, b, "{args:?}");
    }
    // The report: the same sections (the activity charts differ only in
    // their window: the last hour asked of CloudWatch, the events' own
    // span for the file).
    let pages = [&cw[..], &by_file[..]].map(|source| {
        let page = dir.path().join(format!("{}.html", source.len()));
        let page = page.display().to_string();
        run(&["report", "-q", "-o", &page], source);
        std::fs::read_to_string(&page).unwrap()
    });
    use crate::report::{SECTIONS, fact, section};
    assert_eq!(fact(&pages[0], "events"), "4000");
    for label in ["events", "identities", "hidden admins", "refused requests"] {
        assert_eq!(fact(&pages[0], label), fact(&pages[1], label), "{label}");
    }
    for id in &SECTIONS[1..] {
        assert_eq!(section(&pages[0], id), section(&pages[1], id), "{id}");
    }
    assert!(pages[0].contains("CloudWatch Logs: gamma"));
}
