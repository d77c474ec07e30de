//! Every `$ eksaudit ...` example in README.md, run through the real binary
//! from the project's folder: its output must be what the README shows
//! (stdout, then stderr). The first command (`cargo run -- ...`) is
//! checked the same way; its output block is the next one. A table shown
//! for a command that names no `--format` is what a terminal gets, so the
//! test asks for `--format table`.

use std::process::Command;

use super::root;

/// One example: the arguments after `eksaudit` and the output shown.
#[derive(Debug)]
struct Example {
    line: usize,
    args: Vec<String>,
    expected: String,
}

/// Splits a shell command line: words, '...' and "..." (no escapes).
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    assert!(quote.is_none(), "unclosed quote in {s:?}");
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// The fenced blocks of `text`: (line of the fence, lines inside).
fn blocks(text: &str) -> Vec<(usize, Vec<&str>)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<&str>)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            match open.take() {
                Some(b) => out.push(b),
                None => open = Some((i + 1, Vec::new())),
            }
        } else if let Some((_, lines)) = &mut open {
            lines.push(line);
        }
    }
    out
}

fn examples(text: &str) -> Vec<Example> {
    let blocks = blocks(text);
    let mut out = Vec::new();
    for (n, (line, lines)) in blocks.iter().enumerate() {
        let Some(first) = lines.first() else { continue };
        let (command, expected) = if let Some(cmd) = first.strip_prefix("$ eksaudit ") {
            (cmd, lines[1..].join("\n"))
        } else if let Some(cmd) = first.strip_prefix("cargo run -- ") {
            let Some((_, next)) = blocks.get(n + 1) else {
                continue;
            };
            (cmd, next.join("\n"))
        } else {
            continue;
        };
        let mut args = shell_words(command);
        if expected.starts_with("+-") && !args.iter().any(|a| a == "--format") && args[0] == "query"
        {
            args.insert(1, "--format".into());
            args.insert(2, "table".into());
        }
        out.push(Example {
            line: *line,
            args,
            expected,
        });
    }
    out
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(r#"query "select 'a b'" x  'y z'"#),
        vec!["query", "select 'a b'", "x", "y z"]
    );
}

#[test]
fn readme_examples_print_what_the_readme_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 5,
        "examples found: {:?}",
        examples.iter().map(|e| e.line).collect::<Vec<_>>()
    );
    let mut failures = Vec::new();
    for ex in &examples {
        let out = Command::new(env!("CARGO_BIN_EXE_eksaudit"))
            .args(&ex.args)
            .current_dir(root())
            .output()
            .expect("running eksaudit");
        let got = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if got.trim_end() != ex.expected.trim_end() {
            failures.push(format!(
                "README.md:{}: eksaudit {:?}\n--- README shows ---\n{}\n--- the binary prints ---\n{}",
                ex.line, ex.args, ex.expected, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
