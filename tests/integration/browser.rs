//! The report in a real browser: headless Chromium (Debian's `chromium`;
//! `.ci/run` installs it) opens the page written over the samples, with the
//! page's own Content-Security-Policy forbidding every request. Chromium
//! logs each console message (a CSP violation, a script error, a blocked
//! load) to stderr as `CONSOLE`: there must be none. A harness page loads
//! the report in a frame, checks what rendered and sorts a table by
//! clicking its header; a screenshot is saved for the README.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn chromium() -> PathBuf {
    let path = std::env::var_os("EKSAUDIT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium (apt-get install chromium; .ci/run does) \
         or point EKSAUDIT_CHROMIUM at a Chromium",
        path.display()
    );
    path
}

/// Chromium, headless, with nothing of its own to fetch, a fresh profile,
/// and its log on stderr.
fn run_chromium(dir: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What the page logged to the console: nothing is expected.
fn console(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Loads the report in a frame (file pages may read each other with
/// --allow-file-access-from-files), then writes what it found as JSON.
const HARNESS: &str = r##"<!DOCTYPE html><html><body>
<pre id="result">not run</pre>
<iframe id="f" src="report.html" style="width:1200px;height:800px" onload="check()"></iframe>
<script>
function check() {
  var d = document.getElementById("f").contentDocument, r = {};
  r.ready = d.documentElement.getAttribute("data-ready");
  r.sections = Array.prototype.map.call(d.querySelectorAll("main section"), function (s) { return s.id; });
  r.charts = Array.prototype.map.call(d.querySelectorAll("figure.chart"), function (f) {
    var svg = f.querySelector("svg"), box = svg ? svg.getBoundingClientRect() : null;
    return { id: f.id, bars: f.querySelectorAll("rect").length,
             width: box ? Math.round(box.width) : 0, height: box ? Math.round(box.height) : 0 };
  });
  var table = d.querySelector("#identities table"), th = null;
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { if (c.textContent === "requests") th = c; });
  var col = th.cellIndex;
  var column = function () {
    return Array.prototype.map.call(table.tBodies[0].rows, function (row) { return Number(row.cells[col].textContent); });
  };
  th.click(); r.ascending = column(); r.sort1 = th.getAttribute("aria-sort");
  th.click(); r.descending = column(); r.sort2 = th.getAttribute("aria-sort");
  document.getElementById("result").textContent = JSON.stringify(r);
}
</script></body></html>"##;

#[test]
fn the_report_renders_in_chromium_with_nothing_failed() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    super::report::write_report(&[&super::samples()], &report, &[]);
    let url = format!("file://{}", report.display());

    // The screenshot (what the README shows).
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&png);
    let shot = run_chromium(
        dir.path(),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,1900",
            "--hide-scrollbars",
            &url,
        ],
    );
    assert_eq!(console(&shot), Vec::<String>::new());
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(bytes.len() > 50_000, "a blank page? {} bytes", bytes.len());

    // The page, driven from a harness.
    let harness = dir.path().join("harness.html");
    std::fs::write(&harness, HARNESS).unwrap();
    let dom = run_chromium(
        dir.path(),
        &[
            "--allow-file-access-from-files",
            "--dump-dom",
            &format!("file://{}", harness.display()),
        ],
    );
    assert_eq!(console(&dom), Vec::<String>::new());
    let html = String::from_utf8_lossy(&dom.stdout);
    let json = html
        .split("<pre id=\"result\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in {html}"))
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let r: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(r["ready"], "yes", "the page's script did not finish: {r}");
    assert_eq!(r["sections"], serde_json::json!(super::report::SECTIONS));
    let charts = r["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 2, "{r}");
    for c in charts {
        assert!(c["bars"].as_u64().unwrap() > 0, "{c}");
        // Drawn at the frame's width, in the chart's proportions.
        let (w, h) = (c["width"].as_f64().unwrap(), c["height"].as_f64().unwrap());
        assert!(w > 900.0 && (w / h - 960.0 / 260.0).abs() < 0.1, "{c}");
    }
    let numbers = |k: &str| -> Vec<f64> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (up, down) = (numbers("ascending"), numbers("descending"));
    assert!(up.len() > 3, "{r}");
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "{up:?}");
    assert!(down.windows(2).all(|w| w[0] >= w[1]), "{down:?}");
    assert!(up.first() < up.last(), "{up:?}");
    assert_eq!(
        (&r["sort1"], &r["sort2"]),
        (&"ascending".into(), &"descending".into())
    );
}
