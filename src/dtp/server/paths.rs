//! What a request target asks for, checked before anything touches the disk.
//!
//! The target is judged twice: as sent (no `.`/`..`/empty component, no
//! backslash, no control byte), then each component decoded exactly once
//! (`%252e` stays the three characters `%2e`) and held to the manifest's path
//! rules: no `/`, NUL, `.`, `..` or empty component may come out of an escape,
//! at most 255 bytes a component and 4096 in all.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::dtp::escape::unescape;
use crate::dtp::{MANIFEST, manifest};

/// Longest decoded path (the manifest's limit).
pub const MAX_PATH: usize = 4096;
/// Longest decoded component.
pub const MAX_COMPONENT: usize = 255;
/// Longest target accepted: a whole path, every byte escaped, plus a name.
pub const MAX_TARGET: usize = 3 * (MAX_PATH + MAX_COMPONENT) + 2;

/// What a well-formed target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`: motd and repository names.
    Index,
    /// `/api/repos`
    Repos,
    /// `/REPO/data.dsync`
    Manifest { repo: String },
    /// `/REPO/PATH`, PATH decoded (raw bytes, a valid manifest path).
    File { repo: String, path: Vec<u8> },
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed path: {0}")]
    BadRequest(&'static str),
    #[error("request target too long")]
    TooLong,
    #[error("not found")]
    NotFound,
}

/// Classify `target`, the request target as sent (path and query).
pub fn route(target: &str) -> Result<Route, Refusal> {
    if target.len() > MAX_TARGET {
        return Err(Refusal::TooLong);
    }
    check_raw_bytes(target.as_bytes())?;
    let Some(rest) = target.strip_prefix('/') else {
        return Err(Refusal::BadRequest("the target does not start with /"));
    };
    // A query means nothing on these two (cache busters are harmless).
    let without_query = target.split_once('?').map_or(target, |(p, _)| p);
    match without_query {
        "/" => return Ok(Route::Index),
        "/api/repos" => return Ok(Route::Repos),
        _ => {}
    }
    // Elsewhere `?` is a byte of a name: the manifest's escaping keeps it.
    let (repo, path) = rest.split_once('/').ok_or(Refusal::NotFound)?;
    let repo = repo_name(repo)?;
    if path.is_empty() {
        return Err(Refusal::NotFound); // folders are never listed
    }
    let path = decode_path(path)?;
    if path == MANIFEST.as_bytes() {
        return Ok(Route::Manifest { repo });
    }
    if manifest::is_excluded(Path::new(OsStr::from_bytes(&path))) {
        return Err(Refusal::NotFound);
    }
    Ok(Route::File { repo, path })
}

/// One path of a batch request (protocol 1.1): escaped as in the manifest,
/// held to exactly the rules of a single `GET /REPO/PATH`.
pub fn batch_path(escaped: &str) -> Result<Vec<u8>, Refusal> {
    if escaped.len() > MAX_TARGET {
        return Err(Refusal::TooLong);
    }
    check_raw_bytes(escaped.as_bytes())?;
    let path = decode_path(escaped)?;
    if manifest::is_excluded(Path::new(OsStr::from_bytes(&path))) {
        return Err(Refusal::NotFound);
    }
    Ok(path)
}

fn check_raw_bytes(raw: &[u8]) -> Result<(), Refusal> {
    if raw.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Err(Refusal::BadRequest("control byte"));
    }
    if raw.contains(&b'\\') {
        return Err(Refusal::BadRequest("backslash"));
    }
    Ok(())
}

/// The repository segment, decoded; it must be one valid component.
fn repo_name(raw: &str) -> Result<String, Refusal> {
    let name = component(raw)?;
    String::from_utf8(name).map_err(|_| Refusal::NotFound)
}

/// Decode a path component by component.
fn decode_path(raw: &str) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, part) in raw.split('/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend(component(part)?);
    }
    if out.len() > MAX_PATH {
        return Err(Refusal::TooLong);
    }
    // The manifest's own rules, on the whole (the checks above are stricter).
    if let Some(problem) = manifest::path_problem(&out) {
        return Err(Refusal::BadRequest(problem));
    }
    Ok(out)
}

/// One raw component, checked as sent and as decoded.
fn component(raw: &str) -> Result<Vec<u8>, Refusal> {
    match raw {
        "" => return Err(Refusal::BadRequest("empty path component")),
        "." | ".." => return Err(Refusal::BadRequest("dot component")),
        _ => {}
    }
    let decoded = unescape(raw).ok_or(Refusal::BadRequest("malformed %XX escape"))?;
    if decoded.contains(&b'/') {
        return Err(Refusal::BadRequest("an escape decodes to /"));
    }
    if decoded.contains(&0) {
        return Err(Refusal::BadRequest("an escape decodes to NUL"));
    }
    if decoded.is_empty() || decoded == b"." || decoded == b".." {
        return Err(Refusal::BadRequest("an escape decodes to a dot component"));
    }
    if decoded.len() > MAX_COMPONENT {
        return Err(Refusal::TooLong);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(repo: &str, path: &[u8]) -> Result<Route, Refusal> {
        Ok(Route::File {
            repo: repo.into(),
            path: path.to_vec(),
        })
    }

    #[test]
    fn plain_routes() {
        assert_eq!(route("/"), Ok(Route::Index));
        assert_eq!(route("/?x=1"), Ok(Route::Index));
        assert_eq!(route("/api/repos"), Ok(Route::Repos));
        assert_eq!(
            route("/debian/data.dsync"),
            Ok(Route::Manifest {
                repo: "debian".into()
            })
        );
        assert_eq!(
            route("/debian/dists/Release"),
            file("debian", b"dists/Release")
        );
        assert_eq!(route("/debian/a%20b%25c"), file("debian", b"a b%c"));
        assert_eq!(route("/debian/a%FF"), file("debian", b"a\xff"));
        assert_eq!(route("/debian/a?b"), file("debian", b"a?b"));
    }

    #[test]
    fn no_listing() {
        for t in ["/debian", "/debian/", "/api", "/api/"] {
            assert_eq!(route(t), Err(Refusal::NotFound), "{t}");
        }
    }

    #[test]
    fn hostile_targets() {
        let bad = [
            "/../etc/passwd",
            "/debian/../../etc/passwd",
            "/debian/./x",
            "/debian//etc/passwd",
            "//etc/passwd",
            "/debian/x/",
            "/debian/%2e%2e/x",
            "/debian/%2E%2E/%2E%2E/etc/passwd",
            "/debian/..%2fetc",
            "/debian/a%2Fb",
            "/debian/a%00b",
            "/debian/a\\b",
            "/debian/%",
            "/debian/%G0",
            "/%2e%2e/etc/passwd",
            "debian/x",
        ];
        for t in bad {
            assert!(
                matches!(route(t), Err(Refusal::BadRequest(_))),
                "{t}: {:?}",
                route(t)
            );
        }
    }

    #[test]
    fn batch_paths_follow_the_get_rules() {
        assert_eq!(batch_path("dists/a%20b"), Ok(b"dists/a b".to_vec()));
        for bad in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "%2e%2e/x",
            "a%2Fb",
            "a\\b",
        ] {
            assert!(
                matches!(batch_path(bad), Err(Refusal::BadRequest(_))),
                "{bad}: {:?}",
                batch_path(bad)
            );
        }
        assert_eq!(batch_path("x.dsync-part"), Err(Refusal::NotFound));
    }

    #[test]
    fn decoded_exactly_once() {
        assert_eq!(route("/debian/%252e%252e/x"), file("debian", b"%2e%2e/x"));
    }

    #[test]
    fn our_own_files_are_never_served() {
        for t in [
            "/debian/.dsync-cache",
            "/debian/pool/x.deb.dsync-part",
            "/debian/.dsync-emoff",
        ] {
            assert_eq!(route(t), Err(Refusal::NotFound), "{t}");
        }
    }

    #[test]
    fn lengths() {
        let long = format!("/debian/{}", "a".repeat(256));
        assert_eq!(route(&long), Err(Refusal::TooLong));
        let many = format!("/debian/{}", ["a"; 2100].join("/"));
        assert_eq!(route(&many), Err(Refusal::TooLong));
        let huge = format!("/debian/{}", "a/".repeat(MAX_TARGET));
        assert_eq!(route(&huge), Err(Refusal::TooLong));
    }
}
