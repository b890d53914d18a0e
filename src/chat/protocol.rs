//! What a chat member speaks: the plain frames (`{name} :: {text}`, and
//! nothing else) or, when it negotiates the WebSocket subprotocol
//! `shopd.chat.v1`, JSON frames: a `welcome`, then `line` for the lines of
//! others and `sent` for its own, each with its offset. Also the resume
//! query, `?resume=TOKEN&since=N&epoch=EPOCH`.

use serde::{Deserialize, Serialize};

use super::deliver::Line;

/// The subprotocol that turns on the JSON frames.
pub(crate) const SUBPROTOCOL: &str = "shopd.chat.v1";

/// The query of a chat upgrade; only read with the subprotocol.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ResumeQuery {
    /// A token from an earlier welcome.
    pub(crate) resume: Option<String>,
    /// The last offset the member has.
    pub(crate) since: Option<u64>,
    /// The epoch that offset is under.
    pub(crate) epoch: Option<String>,
}

impl ResumeQuery {
    /// The query of `raw` (the part after `?`); `None` when it does not
    /// parse (`since` not a number).
    pub(crate) fn parse(raw: &str) -> Option<ResumeQuery> {
        #[derive(Deserialize)]
        struct Loose {
            resume: Option<String>,
            since: Option<String>,
            epoch: Option<String>,
        }
        let loose: Loose = serde_urlencoded::from_str(raw).ok()?;
        let since = match loose.since {
            Some(since) => Some(since.parse().ok()?),
            None => None,
        };
        Some(ResumeQuery {
            resume: loose.resume.filter(|token| !token.is_empty()),
            since,
            epoch: loose.epoch,
        })
    }
}

/// The first frame a JSON member gets.
#[derive(Debug, Serialize)]
pub(crate) struct Welcome<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) name: &'a str,
    pub(crate) epoch: &'a str,
    pub(crate) offset: u64,
    pub(crate) token: &'a str,
    pub(crate) resumed: bool,
}

#[derive(Serialize)]
struct LineFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    offset: u64,
    from: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct SentFrame {
    #[serde(rename = "type")]
    kind: &'static str,
    offset: u64,
}

/// The welcome's JSON.
pub(crate) fn welcome(welcome: &Welcome<'_>) -> String {
    serde_json::to_string(welcome).unwrap_or_default()
}

/// `line` as a JSON member `me` sees it: `sent` when it is its own.
pub(crate) fn json_line(line: &Line, me: &str) -> String {
    let frame = if line.from() == me {
        serde_json::to_string(&SentFrame {
            kind: "sent",
            offset: line.offset(),
        })
    } else {
        serde_json::to_string(&LineFrame {
            kind: "line",
            offset: line.offset(),
            from: line.from(),
            text: line.text(),
        })
    };
    frame.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_loosely_but_since_must_be_a_number() {
        assert_eq!(ResumeQuery::parse(""), Some(ResumeQuery::default()));
        let full = ResumeQuery::parse("resume=a.1.b&since=7&epoch=ab&other=1").expect("parses");
        assert_eq!(full.resume.as_deref(), Some("a.1.b"));
        assert_eq!((full.since, full.epoch.as_deref()), (Some(7), Some("ab")));
        assert_eq!(ResumeQuery::parse("since=-1"), None);
        assert_eq!(ResumeQuery::parse("since=x"), None);
        assert_eq!(ResumeQuery::parse("resume=").map(|q| q.resume), Some(None));
    }

    #[test]
    fn frames_are_the_contracts() {
        let line = Line::new("ann", "hi \"you\"").numbered(4, None);
        assert_eq!(
            json_line(&line, "bob"),
            r#"{"type":"line","offset":4,"from":"ann","text":"hi \"you\""}"#
        );
        assert_eq!(json_line(&line, "ann"), r#"{"type":"sent","offset":4}"#);
        let text = welcome(&Welcome {
            kind: "welcome",
            name: "ann",
            epoch: "e",
            offset: 0,
            token: "t",
            resumed: false,
        });
        assert_eq!(
            text,
            r#"{"type":"welcome","name":"ann","epoch":"e","offset":0,"token":"t","resumed":false}"#
        );
    }
}
