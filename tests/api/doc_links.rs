//! Every relative link and anchor in README.md and docs/ leads somewhere:
//! the file or directory exists, and an anchor names a heading of the page
//! it points into (GitHub's rules: lower case, spaces to `-`, punctuation
//! dropped, a repeated heading gets `-1`, `-2`, ...).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The Markdown pages whose links are checked.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of `text` outside fenced code blocks (the fenced ones become
/// empty, so line numbers stay right).
fn outside_fences(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return "";
            }
            if fenced { "" } else { line }
        })
        .collect()
}

/// The lines of `text` outside fenced code blocks, without inline code
/// spans: what is in them is not a link.
fn prose(text: &str) -> Vec<String> {
    outside_fences(text)
        .into_iter()
        .map(|line| {
            line.split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .map(|(_, part)| part)
                .collect()
        })
        .collect()
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings, with GitHub's `-N` for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in outside_fences(text) {
        let Some(heading) = line
            .strip_prefix('#')
            .map(|rest| rest.trim_start_matches('#'))
            .and_then(|rest| rest.strip_prefix(' '))
        else {
            continue;
        };
        // Links in a heading count by their text.
        let text: String = heading
            .chars()
            .filter(|c| !matches!(c, '[' | ']'))
            .collect();
        let base = slug(&text);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// Every link target of a line: `[text](target)`, `![alt](target)`, and
/// `[name]: target` definitions.
fn targets(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or_default();
        found.push(target.trim_matches(['<', '>']).to_owned());
        rest = &after[end..];
    }
    if let Some((label, target)) = line.trim_start().split_once("]: ")
        && label.starts_with('[')
    {
        found.push(target.trim().to_owned());
    }
    found
}

/// The dead links of `page`: `file:line: target (why)`.
fn dead_links(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).expect("read a page");
    let dir = page.parent().expect("a page's directory");
    let mut dead = Vec::new();
    for (number, line) in prose(&text).iter().enumerate() {
        for target in targets(line) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let file = if path.is_empty() {
                page.to_path_buf()
            } else {
                dir.join(path)
            };
            let place = format!("{}:{}: {target}", page.display(), number + 1);
            if !file.exists() {
                dead.push(format!("{place} (no such file)"));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            if file.extension().is_none_or(|ext| ext != "md") {
                dead.push(format!(
                    "{place} (an anchor into a page that is not Markdown)"
                ));
                continue;
            }
            let headings = anchors(&std::fs::read_to_string(&file).expect("read the target"));
            if !headings.contains(anchor) {
                dead.push(format!("{place} (no heading with that anchor)"));
            }
        }
    }
    dead
}

#[test]
fn every_relative_link_and_anchor_of_the_readme_and_docs_leads_somewhere() {
    let pages = pages();
    assert!(pages.len() > 5, "README.md and the pages of docs/");
    let dead: Vec<String> = pages.iter().flat_map(|page| dead_links(page)).collect();
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

#[test]
fn anchors_follow_githubs_rules() {
    let page = "# Chat: Watching it\n## Limits and failure\n```\n# not a heading\n```\n## Limits and failure\n### `shopd check` (read-only)\n";
    let expected: BTreeSet<String> = [
        "chat-watching-it",
        "limits-and-failure",
        "limits-and-failure-1",
        "shopd-check-read-only",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(anchors(page), expected);
}

#[test]
fn a_dead_link_is_found() {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("page.md");
    std::fs::write(
        &page,
        "# Top\n[up](#top) [gone](missing.md) [bad](#nowhere) `[code](missing.md)`\n",
    )
    .expect("write");
    let dead = dead_links(&page);
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].contains("missing.md (no such file)"));
    assert!(dead[1].contains("#nowhere (no heading"));
}
