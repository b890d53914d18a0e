//! Route templates and how a path fits one. A path is read as warp's
//! `path!` reads it: segments after the leading `/`, compared raw (not
//! percent-decoded), one trailing `/` allowed, no empty segment; `{name}`
//! takes one non-empty segment, a final `{*name}` whatever follows.

use std::ops::Range;

/// One route template, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(&'static str),
    Param,
    Rest,
}

pub fn parts(template: &'static str) -> Vec<Part> {
    let segments = template.strip_prefix('/').unwrap_or(template);
    segments
        .split('/')
        .map(|segment| {
            if segment.starts_with("{*") {
                Part::Rest
            } else if segment.starts_with('{') {
                Part::Param
            } else {
                Part::Literal(segment)
            }
        })
        .collect()
}

/// Whether `path` fits `parts`, and where its parameters are.
pub fn fit(parts: &[Part], path: &str) -> Option<[Range<usize>; 2]> {
    let mut params = [0..0, 0..0];
    let mut found = 0;
    let mut at = usize::from(path.starts_with('/'));
    let mut rest = Some(path.get(at..)?);
    for part in parts {
        if *part == Part::Rest {
            *params.get_mut(found)? = at.min(path.len())..path.len();
            return Some(params);
        }
        let remaining = rest?;
        let (segment, after) = match remaining.split_once('/') {
            Some((segment, after)) => (segment, Some(after)),
            None => (remaining, None),
        };
        match part {
            Part::Literal(literal) if segment == *literal => {}
            Part::Param if !segment.is_empty() => {
                *params.get_mut(found)? = at..at + segment.len();
                found += 1;
            }
            _ => return None,
        }
        at += segment.len() + 1;
        rest = after;
    }
    // The end: nothing left, or one trailing slash (already skipped).
    rest.is_none_or(str::is_empty).then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameters `path` gives `template`, or `None` if it does not fit.
    fn params<'a>(template: &'static str, path: &'a str) -> Option<Vec<&'a str>> {
        let parts = parts(template);
        let count = parts
            .iter()
            .filter(|p| !matches!(p, Part::Literal(_)))
            .count();
        fit(&parts, path).map(|found| {
            found
                .iter()
                .take(count)
                .map(|range| &path[range.clone()])
                .collect()
        })
    }

    #[test]
    fn literal_paths_fit_with_or_without_one_trailing_slash() {
        assert_eq!(params("/item", "/item"), Some(vec![]));
        assert_eq!(params("/item", "/item/"), Some(vec![]));
        assert_eq!(params("/readyz/chat", "/readyz/chat/"), Some(vec![]));
        for path in [
            "/item//", "//item", "/items", "/Item", "/it%65m", "/", "", "/item/x",
        ] {
            assert_eq!(params("/item", path), None, "{path}");
        }
    }

    #[test]
    fn parameters_take_one_nonempty_raw_segment() {
        assert_eq!(params("/item/{id}", "/item/12"), Some(vec!["12"]));
        assert_eq!(params("/item/{id}", "/item/12/"), Some(vec!["12"]));
        assert_eq!(params("/item/{id}", "/item/%31"), Some(vec!["%31"]));
        assert_eq!(
            params("/cart/{cart_id}/add/{item_id}", "/cart/3/add/x"),
            Some(vec!["3", "x"])
        );
        for path in [
            "/item",
            "/item/",
            "/item//",
            "/item/1//",
            "/item/1/2",
            "/item//1",
        ] {
            assert_eq!(params("/item/{id}", path), None, "{path}");
        }
    }

    #[test]
    fn a_rest_parameter_takes_whatever_follows() {
        assert_eq!(params("/docs/{*file}", "/docs"), Some(vec![""]));
        assert_eq!(params("/docs/{*file}", "/docs/"), Some(vec![""]));
        assert_eq!(
            params("/docs/{*file}", "/docs/a/b.js"),
            Some(vec!["a/b.js"])
        );
        assert_eq!(params("/docs/{*file}", "/docsx"), None);
    }
}
