//! Third-party audit events from ../shared/realdata (not part of the
//! project): run with `cargo test -- --ignored realdata` when it is there.

use std::path::PathBuf;

use super::{root, run_sql, table};

fn realdata() -> Option<PathBuf> {
    let p = root().join("../shared/realdata");
    p.is_dir().then_some(p)
}

#[test]
#[ignore = "needs ../shared/realdata, which is not part of the project"]
fn realdata_events_are_all_read() {
    let dir = realdata().expect("../shared/realdata is missing");
    let (batches, counts) = run_sql(
        "select count(*) as events, count(distinct auditID) as ids, count(requestReceivedTimestamp) as timed from audit",
        &[&dir],
    )
    .unwrap();
    println!("{}\n{counts:#?}", table(&batches));
    // README.md: 1,066 Event objects, the workshop event counted once
    // (the copy inside the Markdown page is not a log file).
    assert_eq!(counts.events, 1066, "{:?}", counts.first);
    // The one negative fixture ({"kind": 0}) is reported, not crashed on.
    assert_eq!(counts.bad_events, 1, "{:?}", counts.first);
}

#[test]
#[ignore = "needs ../shared/realdata, which is not part of the project"]
fn realdata_identities_name_the_cluster_creator() {
    let dir = realdata().expect("../shared/realdata is missing");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(["identities", "-q", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    println!("{} identities", rows.len());
    let admin = rows
        .iter()
        .find(|r| r["username"] == "kubernetes-admin")
        .expect("the workshop's kubernetes-admin");
    assert_eq!(admin["hidden_admin"], true);
    assert_eq!(
        admin["canonical_arns"],
        serde_json::json!(["arn:aws:iam::123412341234:role/DevAdministrator"])
    );
    // EKS's own components are IAM roles too, and no admins.
    let addon = rows
        .iter()
        .find(|r| r["username"] == "eks:addon-manager")
        .unwrap();
    assert_eq!(addon["kind"], "EKS component");
    assert_eq!(addon["hidden_admin"], false);
}
