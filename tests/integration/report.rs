//! `eksaudit report`: the page over the samples says what `query`,
//! `identities` and `alerts run` say over the same input; the same page
//! comes from a lake; --since/--until bound it; bad input is named.

use std::path::Path;
use std::process::{Command, Output};

use super::eksaudit_json;

fn eksaudit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eksaudit"))
        .args(args)
        .output()
        .unwrap()
}

/// The page's sections, in order.
pub const SECTIONS: [&str; 8] = [
    "activity",
    "identities",
    "alerts",
    "exec",
    "rbac",
    "aws-auth",
    "anonymous",
    "refused",
];

/// Writes the report over `paths` to `out`; returns the page.
pub fn write_report(paths: &[&str], out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["report", "-o", out.to_str().unwrap()];
    args.extend(extra);
    args.extend(paths);
    let run = eksaudit(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

/// The HTML of the section `id`.
pub fn section<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = html[start..].find("</section>").unwrap();
    &html[start..start + end]
}

/// The text of the fact labelled `label` at the top of the page.
pub fn fact<'h>(html: &'h str, label: &str) -> &'h str {
    let at = html
        .find(&format!("<span class=\"label\">{label}</span>"))
        .unwrap_or_else(|| panic!("no fact {label}"));
    let value = html[..at].rfind("<span class=\"value\">").unwrap() + 20;
    html[value..at].trim_end().trim_end_matches("</span>")
}

/// The rows of the first table in `html` (cells as their text), header first.
fn rows(html: &str) -> Vec<Vec<String>> {
    let Some(start) = html.find("<table") else {
        return Vec::new();
    };
    let table = &html[start..html.find("</table>").unwrap()];
    table
        .split("<tr>")
        .skip(1)
        .map(|row| {
            // Each cell: `<td ...>TEXT</td>` (or th).
            row.split("<t")
                .filter(|cell| cell.starts_with('d') || cell.starts_with('h'))
                .filter_map(|cell| {
                    let text = cell.split_once('>')?.1;
                    Some(text.split("</").next().unwrap_or(text))
                })
                .map(|t| {
                    t.replace("&amp;", "&")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn count(sql: &str, paths: &[&str]) -> u64 {
    let mut args = vec!["query", "--format", "json", sql];
    args.extend(paths);
    let v = eksaudit_json(&args);
    v[0]["n"].as_u64().unwrap()
}

#[test]
fn the_page_over_the_samples_says_what_the_other_commands_say() {
    let dir = tempfile::tempdir().unwrap();
    let samples = super::samples();
    let html = write_report(&[&samples], &dir.path().join("r.html"), &[]);
    let events = count("select count(*) as n from audit", &[&samples]);
    assert_eq!(fact(&html, "events"), events.to_string());
    let refused = count(
        "select count(*) as n from audit where responseStatus.code = 403 \
         or annotations['authorization.k8s.io/decision'] = 'forbid'",
        &[&samples],
    );
    assert_eq!(fact(&html, "refused requests"), refused.to_string());

    // Identities: the same rows as `eksaudit identities`, hidden admins flagged.
    let ids = eksaudit_json(&["identities", "--format", "json", &samples]);
    let ids = ids.as_array().unwrap();
    let table = rows(section(&html, "identities"));
    assert_eq!(table.len(), ids.len() + 1, "{table:?}");
    let hidden: Vec<&str> = ids
        .iter()
        .filter(|i| i["hidden_admin"] == true)
        .map(|i| i["username"].as_str().unwrap())
        .collect();
    assert!(hidden.contains(&"kubernetes-admin"), "{hidden:?}");
    assert_eq!(fact(&html, "hidden admins"), hidden.len().to_string());
    // Hidden admins come first.
    let shown: Vec<&str> = table[1..hidden.len() + 1]
        .iter()
        .map(|r| r[0].as_str())
        .collect();
    for h in &hidden {
        assert!(shown.contains(h), "{h} not among the first rows: {shown:?}");
    }

    // Alerts: what `alerts run` raises.
    let run = eksaudit(&["alerts", "run", "--format", "json", &samples]);
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!alerts.is_empty());
    let table = rows(section(&html, "alerts"));
    assert_eq!(table.len(), alerts.len() + 1);
    for a in &alerts {
        let title = format!(
            "{} ({})",
            a["title"].as_str().unwrap(),
            a["rule"].as_str().unwrap()
        );
        assert!(table.iter().any(|r| r.contains(&title)), "{title}");
    }
    assert!(
        fact(&html, "alerts (critical/high)").starts_with(&format!("{} (", alerts.len())),
        "{}",
        fact(&html, "alerts (critical/high)")
    );

    // Exec sessions with their decoded commands.
    let exec = rows(section(&html, "exec"));
    let n_exec = count(
        "select count(*) as n from audit where objectRef.resource = 'pods' \
         and objectRef.subresource in ('exec', 'attach', 'portforward')",
        &[&samples],
    );
    assert_eq!(exec.len().saturating_sub(1) as u64, n_exec);
    assert_eq!(fact(&html, "exec sessions"), n_exec.to_string());

    // The activity charts hold every timed event.
    let activity = section(&html, "activity");
    let requests = activity.split("id=\"requests-by-verb\"").nth(1).unwrap();
    let drawn: u64 = requests
        .split("</figure>")
        .next()
        .unwrap()
        .split(": ")
        .skip(1)
        .filter_map(|s| s.split("</title>").next()?.parse::<u64>().ok())
        .sum();
    let timed = count(
        "select count(*) as n from audit where requestReceivedTimestamp is not null",
        &[&samples],
    );
    assert_eq!(drawn, timed);
}

#[test]
fn since_and_until_bound_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gen.ndjson");
    let log = log.to_str().unwrap();
    let generated = eksaudit(&["generate", "-n", "3000", "--span", "2d", "-o", log]);
    assert!(generated.status.success());
    let bounds = eksaudit_json(&[
        "query",
        "--format",
        "json",
        "select cast(min(requestReceivedTimestamp) + interval '12 hours' as varchar) as s, \
         cast(min(requestReceivedTimestamp) + interval '30 hours' as varchar) as u from audit",
        log,
    ]);
    let as_text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let (since, until) = (as_text(&bounds[0]["s"]), as_text(&bounds[0]["u"]));
    let html = write_report(
        &[log],
        &dir.path().join("r.html"),
        &["--since", &since, "--until", &until],
    );
    let inside = count(
        &format!(
            "select count(*) as n from audit where requestReceivedTimestamp >= '{since}' \
             and requestReceivedTimestamp < '{until}'"
        ),
        &[log],
    );
    assert!(inside > 500 && inside < 3000, "{inside}");
    assert_eq!(fact(&html, "events"), inside.to_string());
    assert!(html.contains(&format!("since {since}, until {until}")));
}

#[test]
fn a_lake_gives_the_same_page() {
    let dir = tempfile::tempdir().unwrap();
    let samples = super::samples();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let ingest = eksaudit(&["ingest", "--lake", lake, "--cluster", "prod", &samples]);
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let files = write_report(
        &[&samples],
        &dir.path().join("files.html"),
        &["--cluster", "prod"],
    );
    let from_lake = write_report(&[], &dir.path().join("lake.html"), &["--lake", lake]);
    for label in [
        "events",
        "identities",
        "hidden admins",
        "refused requests",
        "exec sessions",
    ] {
        assert_eq!(fact(&files, label), fact(&from_lake, label), "{label}");
    }
    assert!(from_lake.contains(&format!("lake {lake}")));
    // Refused and anonymous rows may tie in their order by count.
    for id in SECTIONS
        .iter()
        .filter(|s| !["anonymous", "refused"].contains(s))
    {
        assert_eq!(section(&files, id), section(&from_lake, id), "{id}");
    }
}

#[test]
fn bad_input_is_named_and_strict_fails() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bad.log");
    std::fs::write(
        &log,
        "{\"verb\":\"get\",\"user\":{\"username\":\"alice\"},\"requestReceivedTimestamp\":\"2026-11-02T08:00:00Z\"}\nnot json\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let out = dir.path().join("r.html");
    let out = out.to_str().unwrap();
    let run = eksaudit(&["report", "-o", out, log]);
    assert!(run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains(&format!("{log}:2")), "{err}");
    let html = std::fs::read_to_string(out).unwrap();
    assert_eq!(fact(&html, "events"), "1");
    assert!(html.contains("1 event(s) of the inputs could not be read"));
    let strict = eksaudit(&["report", "--strict", "-o", out, log]);
    assert_eq!(strict.status.code(), Some(3));

    let none = eksaudit(&["report", "-o", out]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no input given"));
    let both = eksaudit(&["report", "-o", out, "--lake", "x", log]);
    assert_eq!(both.status.code(), Some(2));
}
