//! The `Allow` header of a 405 reply (RFC 9110): the methods each route
//! template takes, read once at start-up from the typed API document.

use std::sync::Arc;

use utoipa::openapi::OpenApi;
use utoipa::openapi::path::PathItem;
use warp::http::{HeaderValue, StatusCode, header};

use super::Routed;

/// Route templates (`["item", "{id}"]`) with their methods as an `Allow`
/// value. Cheap to clone.
#[derive(Clone)]
pub struct Allow {
    routes: Arc<[(Vec<String>, HeaderValue)]>,
}

impl Allow {
    /// The table of every path of `document`, plus the routes the document
    /// leaves out (itself, the chat page's assets).
    pub fn from_document(document: &OpenApi) -> Allow {
        let undocumented = ["openapi.json", "chat.css", "chat.js"]
            .into_iter()
            .map(|path| (vec![path.to_owned()], HeaderValue::from_static("GET")));
        let documented = document.paths.paths.iter().filter_map(|(template, item)| {
            let value = HeaderValue::from_str(&methods(item).join(", ")).ok()?;
            let segments = template.split('/').skip(1).map(str::to_owned).collect();
            Some((segments, value))
        });
        Allow {
            routes: undocumented.chain(documented).collect(),
        }
    }

    /// The methods `path` takes, as an `Allow` value; `None` for an
    /// unknown path.
    pub fn methods(&self, path: &str) -> Option<HeaderValue> {
        // Like the routes, take an optional trailing slash.
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        if segments.first() == Some(&"docs") {
            return Some(HeaderValue::from_static("GET"));
        }
        let fits = |template: &[String]| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| want == got || (want.starts_with('{') && !got.is_empty()))
        };
        self.routes
            .iter()
            .find(|(template, _)| fits(template))
            .map(|(_, methods)| methods.clone())
    }

    /// Gives a 405 reply the `Allow` header naming `path`'s methods.
    pub fn apply(&self, path: &str, mut routed: Routed) -> Routed {
        if routed.response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(methods) = self.methods(path)
        {
            routed.response.headers_mut().insert(header::ALLOW, methods);
        }
        routed
    }
}

/// The methods `item` has an operation for, in the order the API lists them.
fn methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter(|(_, operation)| operation.is_some())
    .map(|(method, _)| method)
    .collect()
}
