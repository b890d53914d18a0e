//! ETags on replies and the conditional request headers (`If-Match`,
//! `If-None-Match`); the tag itself is [`crate::domain::etag`].

use serde::Serialize;
use utoipa::IntoParams;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::Response;

use super::reply;
use crate::domain::etag::Condition;

/// The `If-None-Match` header of a conditional read.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfNoneMatch {
    /// ETags (a comma-separated list, compared weakly) or `*`: when one is
    /// current, the answer is 304 with no body.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

/// The `If-Match` header of a conditional write.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatch {
    /// ETags (a comma-separated list, compared strongly) or `*`: when none
    /// is the item's current one, the answer is 412 and nothing changes.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// Reads one conditional header (every occurrence, comma-separated lists);
/// `None` when it is absent.
#[must_use]
pub fn condition(headers: &HeaderMap, name: &header::HeaderName) -> Option<Condition> {
    let mut tags = Vec::new();
    let mut sent = false;
    for value in headers.get_all(name) {
        sent = true;
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',').map(str::trim) {
            if part == "*" {
                return Some(Condition::Any);
            }
            if !part.is_empty() {
                tags.push(part.to_owned());
            }
        }
    }
    sent.then_some(Condition::Tags(tags))
}

/// The `If-Match` precondition, when sent.
#[must_use]
pub fn if_match(headers: &HeaderMap) -> Option<Condition> {
    condition(headers, &header::IF_MATCH)
}

/// A 304 (with the current ETag, no body) when `If-None-Match` matches
/// `value`'s tag; else the tagged 200.
pub fn fresh_or_ok<T: Serialize + ?Sized>(headers: &HeaderMap, value: &T) -> Response {
    // The body is serialized and hashed once, for the tag and the 200.
    let mut answer = reply::tagged_answer(StatusCode::OK, value);
    let hit = answer.etag.as_deref().is_some_and(|current| {
        condition(headers, &header::IF_NONE_MATCH).is_some_and(|c| c.matches_weakly(current))
    });
    if hit {
        answer.status = StatusCode::NOT_MODIFIED.as_u16();
        answer.body.clear();
    }
    reply::sent(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    #[test]
    fn lists_and_star_are_read_from_every_occurrence() {
        let mut headers = HeaderMap::new();
        assert_eq!(condition(&headers, &header::IF_MATCH), None);
        headers.append(header::IF_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        headers.append(header::IF_MATCH, HeaderValue::from_static("\"c\""));
        assert_eq!(
            condition(&headers, &header::IF_MATCH),
            Some(Condition::Tags(vec![
                "\"a\"".into(),
                "W/\"b\"".into(),
                "\"c\"".into()
            ]))
        );
        headers.append(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(condition(&headers, &header::IF_MATCH), Some(Condition::Any));
    }
}
