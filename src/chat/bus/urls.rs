//! [`BusUrls`]: the NATS servers of `--chat-bus`, checked when parsed and
//! never shown with their passwords.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// The NATS servers of `--chat-bus`: one or more `nats://` URLs, comma
/// separated, of one cluster. Shown with any password replaced by `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BusUrls(Vec<String>);

impl BusUrls {
    /// The URLs as given, passwords included: only for connecting.
    pub(super) fn expose(&self) -> &[String] {
        &self.0
    }
}

impl FromStr for BusUrls {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let urls: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err("expected one or more nats:// URLs, comma separated".into());
        }
        for url in &urls {
            if !url.starts_with("nats://") {
                // Not echoed: it may hold a password.
                return Err("each chat bus URL must start with nats://".into());
            }
            url.parse::<async_nats::ServerAddr>()
                .map_err(|err| format!("{}: {err}", redact(url)))?;
        }
        Ok(BusUrls(urls))
    }
}

impl TryFrom<String> for BusUrls {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for BusUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().map(|url| redact(url)).collect();
        f.write_str(&shown.join(","))
    }
}

impl fmt::Debug for BusUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusUrls({self})")
    }
}

/// `url` with the password of its user part replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
            // A lone token is a secret too.
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_urls_are_nats_urls_shown_without_passwords() {
        let urls: BusUrls = "nats://a:1, nats://user:s3cret@b:2".parse().unwrap();
        assert_eq!(urls.expose().len(), 2);
        let shown = format!("{urls} {urls:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("nats://a:1,nats://user:***@b:2"), "{shown}");
        assert!("http://a:1".parse::<BusUrls>().is_err());
        assert!(" , ".parse::<BusUrls>().is_err());
    }
}
