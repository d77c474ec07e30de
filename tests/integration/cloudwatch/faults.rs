//! Failures moto cannot produce, from a fault-injecting HTTP proxy on
//! loopback in front of it: throttling, 5xx, connection resets, bad
//! credentials.

use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant};

use super::{Moto, count_rows, eksaudit_at, now_ms, stdout};

/// What the fault proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Pass,
    Throttle,
    ServerError,
    Reset,
    Denied,
}

/// An HTTP proxy on loopback in front of moto that answers the Nth request
/// (0-based) with `faults(N)` instead of forwarding it: the failures moto
/// cannot produce. Returns its URL.
fn fault_proxy(upstream: &str, faults: fn(usize) -> Fault) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let (upstream, count) = (upstream.clone(), count.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                loop {
                    // One request: head, then a body of Content-Length bytes.
                    let mut head = Vec::new();
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line.to_ascii_lowercase().starts_with("connection:") {
                            continue;
                        }
                        if line == "\r\n" {
                            head.extend_from_slice(b"Connection: close\r\n\r\n");
                            break;
                        }
                        head.extend_from_slice(line.as_bytes());
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let error = |status: &str, kind: &str| {
                        let body = format!(r#"{{"__type":"{kind}","message":"injected"}}"#);
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\n\
                             x-amzn-ErrorType: {kind}\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let reply = match faults(count.fetch_add(1, Ordering::SeqCst)) {
                        Fault::Reset => return, // drop the connection unanswered
                        Fault::Throttle => error("400 Bad Request", "ThrottlingException"),
                        Fault::Denied => error("400 Bad Request", "UnrecognizedClientException"),
                        Fault::ServerError => {
                            error("500 Internal Server Error", "ServiceUnavailableException")
                        }
                        Fault::Pass => {
                            let mut up = TcpStream::connect(&upstream).unwrap();
                            up.write_all(&head).unwrap();
                            up.write_all(&body).unwrap();
                            let mut response = Vec::new();
                            up.read_to_end(&mut response).unwrap();
                            if client.write_all(&response).is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    if client.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn fetch_through(url: &str, output: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "fetch",
        "-q",
        "--cloudwatch",
        "delta",
        "--since",
        "1h",
        "--page-size",
        "500",
        "--max-tps",
        "1000",
        "-o",
        output,
    ];
    args.extend_from_slice(extra);
    eksaudit_at(url, &args).output().unwrap()
}

/// Throttling, 5xx and connection resets in the middle of the pagination
/// are retried: nothing skipped, nothing twice.
#[test]
fn fetch_retries_throttling_server_errors_and_resets() {
    let moto = Moto::start();
    moto.put(
        "/aws/eks/delta/cluster",
        &[("kube-apiserver-audit-1", 2_600)],
        now_ms() - 10 * 60_000,
    );
    let proxy = fault_proxy(&moto.url, |n| match n {
        1 | 5 | 6 => Fault::Throttle,
        3 => Fault::ServerError,
        8 => Fault::Reset,
        _ => Fault::Pass,
    });
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("delta.ndjson").display().to_string();
    let out = fetch_through(&proxy, &output, &[]);
    stdout(&out);
    assert_eq!(count_rows(&output), "n,ids\n2600,2600\n");
}

/// A request that keeps failing stops the fetch with the error (exit 2),
/// the checkpoint at the last page written; a rerun completes the output.
#[test]
fn fetch_stops_on_persistent_failure_and_resumes() {
    let moto = Moto::start();
    moto.put(
        "/aws/eks/delta/cluster",
        &[("kube-apiserver-audit-1", 2_000)],
        now_ms() - 10 * 60_000,
    );
    let proxy = fault_proxy(&moto.url, |n| {
        if n >= 2 {
            Fault::ServerError
        } else {
            Fault::Pass
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("delta.ndjson").display().to_string();
    let out = fetch_through(&proxy, &output, &["--max-attempts", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/aws/eks/delta/cluster") && err.contains("ServiceUnavailable"),
        "{err}"
    );
    // The retry was said, and the error is one line, not the SDK's structs.
    assert!(
        err.contains("CloudWatch Logs request failed (")
            && err.contains("retrying, attempt 2 of 2"),
        "{err}"
    );
    assert!(!err.contains("ServiceError {"), "{err}");
    // Two pages made it before the failure.
    assert_eq!(count_rows(&output), "n,ids\n1000,1000\n");
    let out = fetch_through(&moto.url, &output, &[]);
    stdout(&out);
    assert_eq!(count_rows(&output), "n,ids\n2000,2000\n");
}

/// Bad credentials are not retried: one clear error, exit 2, nothing
/// written, and the key never printed.
#[test]
fn fetch_with_bad_credentials_fails_at_once() {
    let moto = Moto::start();
    let proxy = fault_proxy(&moto.url, |_| Fault::Denied);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("delta.ndjson").display().to_string();
    let started = Instant::now();
    let out = fetch_through(&proxy, &output, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it was retried"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UnrecognizedClientException"), "{err}");
    assert!(!err.contains("testing"), "credentials in the error: {err}");
    assert_eq!(std::fs::metadata(&output).unwrap().len(), 0);
}
