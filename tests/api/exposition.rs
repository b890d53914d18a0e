//! The Prometheus text exposition as the tests read it: one parser for
//! every test that looks at `GET /metrics`.
//!
//! Hand-written on purpose. The crates that parse the format do not fit:
//! prometheus-parse 0.2.5 splits labels on `,` and `=` without reading
//! quotes or escapes (a label value holding either would be misread, which
//! is the kind of fault these tests must catch) and brings chrono, regex
//! and itertools for it; openmetrics-parser is LGPL-3.0. What shopd's
//! exposition must be is checked against Prometheus' own parser anyway:
//! `promtool check metrics` in `metrics.rs`, and a real Prometheus
//! scraping shopd in `prometheus_e2e.rs`.

use std::collections::{BTreeMap, HashMap};

use crate::helpers::TestApp;

/// One sample line: name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed text exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name to (type, help).
    pub families: HashMap<String, (String, String)>,
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Exposition {
    /// Parses the text format as far as shopd uses it.
    pub fn parse(text: &str) -> Exposition {
        let mut exposition = Exposition {
            text: text.to_owned(),
            ..Exposition::default()
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                let family = exposition.families.entry(name.into()).or_default();
                family.1 = help.into();
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line with a type");
                let family = exposition.families.entry(name.into()).or_default();
                family.0 = kind.into();
            } else if !line.starts_with('#') {
                exposition.samples.push(parse_sample(line));
            }
        }
        exposition
    }

    /// The value of the sample with exactly these labels, if any.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The family a sample belongs to (`x_bucket` belongs to `x`).
    pub fn family_of(&self, sample: &str) -> Option<&(String, String)> {
        self.families.get(sample).or_else(|| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| self.families.get(sample.strip_suffix(suffix)?))
        })
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("sample line without a value: {line:?}"),
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next().expect("unterminated labels");
            match c {
                '}' => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
                    let mut value = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(other) => value.push(other),
                                None => panic!("bad escape in {line:?}"),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
    }
    let value = rest.split_whitespace().next().expect("value");
    Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value),
    }
}

/// A sample value or an `le` bound: a float, `+Inf`, `-Inf` or `NaN`.
pub fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {other:?}")),
    }
}

/// Scrapes `/metrics` (which counts this very request only afterwards).
pub async fn scrape(app: &TestApp) -> Exposition {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    Exposition::parse(&response.text().await.expect("metrics text"))
}
