//! The README's examples, run top to bottom with curl against the built
//! shopd with the shipped config.toml, on port 0 and a fresh data
//! directory: each `curl` line of the marked block must answer the status
//! (and body) written in the `# STATUS ...` line under it.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{require_tool, scratch, spawn_process};

/// The comment that marks the block of examples this test runs.
const MARKER: &str = "<!-- readme-examples:";
/// The base URL the examples are written against.
const BASE: &str = "localhost:8000";

/// One example: a curl command and what it must answer.
#[derive(Debug)]
struct Example {
    line: String,
    args: Vec<String>,
    status: u16,
    expect: Expect,
}

/// What an example's body must be.
#[derive(Debug)]
enum Expect {
    /// No check (e.g. a 304).
    Nothing,
    /// Equal to this JSON.
    Json(Value),
    /// Text that contains this (written between backticks).
    Contains(String),
}

/// The marked block of `readme`, as its lines.
fn marked_block(readme: &str) -> Vec<&str> {
    let after = readme
        .split_once(MARKER)
        .expect("README.md marks its examples with `<!-- readme-examples:`")
        .1;
    let mut lines = after.lines().skip_while(|l| !l.starts_with("```"));
    assert_eq!(
        lines.next().map(str::trim),
        Some("```sh"),
        "the marked block is a sh block"
    );
    lines.take_while(|l| !l.starts_with("```")).collect()
}

/// Splits a shell command line into words: single and double quotes, no
/// expansions (the examples use none).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unclosed quote in `{line}`");
    if in_word {
        words.push(word);
    }
    words
}

/// The examples of the block, each paired with the expectation under it.
fn examples(block: &[&str]) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut pending: Option<(String, Vec<String>)> = None;
    for line in block.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if let Some(expectation) = line.strip_prefix("# ") {
            let (line, args) = pending
                .take()
                .unwrap_or_else(|| panic!("`# {expectation}` follows no curl line"));
            let (status, rest) = expectation.split_once(' ').unwrap_or((expectation, ""));
            let status = status
                .parse()
                .unwrap_or_else(|_| panic!("`# {expectation}` does not start with a status"));
            let rest = rest.trim();
            let expect = if rest.starts_with('{') || rest.starts_with('[') {
                Expect::Json(
                    serde_json::from_str(rest)
                        .unwrap_or_else(|err| panic!("the body under `{line}` is not JSON: {err}")),
                )
            } else if let Some((_, quoted)) = rest.split_once('`') {
                let snippet = quoted.split_once('`').map_or(quoted, |(s, _)| s);
                Expect::Contains(snippet.to_owned())
            } else {
                Expect::Nothing
            };
            examples.push(Example {
                line,
                args,
                status,
                expect,
            });
        } else {
            assert!(
                pending.is_none(),
                "`{}` has no `# STATUS` line under it",
                pending.map(|p| p.0).unwrap_or_default()
            );
            let words = shell_words(line);
            assert_eq!(
                words.first().map(String::as_str),
                Some("curl"),
                "`{line}`: the block holds curl lines and their results only"
            );
            pending = Some((line.to_owned(), words[1..].to_vec()));
        }
    }
    assert!(
        pending.is_none(),
        "the last curl line has no `# STATUS` line"
    );
    examples
}

/// Runs `example` against `addr`; returns status and body.
fn run(curl: &Path, example: &Example, addr: std::net::SocketAddr) -> (u16, String) {
    let args = example
        .args
        .iter()
        .filter(|arg| *arg != "-i") // the test reads the status itself
        .map(|arg| arg.replace(BASE, &format!("http://{addr}")));
    let output = std::process::Command::new(curl)
        .args(["--silent", "--show-error", "--write-out", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "`{}`: curl failed: {}",
        example.line,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 reply");
    let (body, status) = text.rsplit_once('\n').expect("the status line");
    (status.parse().expect("a status"), body.to_owned())
}

#[test]
fn the_readme_examples_answer_what_the_readme_says_in_order() {
    let Some(curl) = require_tool("curl", "readme examples") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let examples = examples(&marked_block(&readme));
    assert!(examples.len() >= 10, "the README shows its examples");
    // The built binary with the shipped config.toml, as `cargo run` runs
    // it, on a fresh data directory and port 0.
    let (_cwd_dir, cwd) = scratch();
    std::fs::copy(root.join("config.toml"), cwd.join("config.toml")).expect("copy config.toml");
    let server = spawn_process(&cwd, &cwd.join("data"), &[]);
    for example in &examples {
        let (status, body) = run(&curl, example, server.addr);
        assert_eq!(status, example.status, "`{}` answered {body}", example.line);
        match &example.expect {
            Expect::Nothing => {}
            Expect::Json(expected) => {
                let got: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|err| panic!("`{}`: {err}: {body}", example.line));
                assert_eq!(&got, expected, "`{}`", example.line);
            }
            Expect::Contains(snippet) => assert!(
                body.contains(snippet.as_str()),
                "`{}`: no `{snippet}` in the reply",
                example.line
            ),
        }
    }
}

#[test]
fn shell_words_keep_quoted_json_whole() {
    assert_eq!(
        shell_words(r#"curl -X POST localhost:8000/item -d '{"name": "Tea"}'"#),
        [
            "curl",
            "-X",
            "POST",
            "localhost:8000/item",
            "-d",
            r#"{"name": "Tea"}"#
        ]
    );
}

#[test]
fn an_example_without_its_result_is_refused() {
    let block = [
        "curl localhost:8000/item/1",
        "curl localhost:8000/item/2",
        "# 404",
    ];
    let refused = std::panic::catch_unwind(|| examples(&block));
    assert!(refused.is_err());
}
