//! `identities` and `rbac suggest` pulling from CloudWatch Logs give what
//! they give over the same events in a file.

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
}
