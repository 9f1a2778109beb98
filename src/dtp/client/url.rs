//! DTP URLs: `dtp://HOST[:PORT]/REPO` means `http://HOST:PORT/REPO/`;
//! `http(s)://HOST[:PORT]/REPO/` is used as it is.

use super::error::ClientError;
use crate::dtp::DEFAULT_PORT;

/// The repository's base URL, always ending in `/`.
pub fn base(url: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let base = if let Some(rest) = url.strip_prefix("dtp://") {
        let (authority, repo) = rest.split_once('/').ok_or_else(|| bad("no /REPO"))?;
        let repo = repo.trim_end_matches('/');
        if repo.is_empty() {
            return Err(bad("no /REPO"));
        }
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        // A port is there when the last `:` comes after any `]` of an IPv6 host.
        let has_port = match (authority.rfind(':'), authority.rfind(']')) {
            (Some(colon), Some(bracket)) => colon > bracket,
            (Some(_), None) => true,
            _ => false,
        };
        if has_port {
            format!("http://{authority}/{repo}/")
        } else {
            format!("http://{authority}:{DEFAULT_PORT}/{repo}/")
        }
    } else if url.starts_with("http://") || url.starts_with("https://") {
        if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        }
    } else {
        return Err(bad("the scheme is not dtp://, http:// or https://"));
    };
    let parsed = reqwest::Url::parse(&base).map_err(|e| bad(&e.to_string()))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("it has a ?query or #fragment"));
    }
    Ok(parsed.to_string())
}

/// The URL of a file, `raw` being its path's bytes as in the manifest.
pub fn file(base: &str, raw: &[u8]) -> String {
    format!("{base}{}", path(raw))
}

/// The manifest's escaping, plus `%XX` for the few printable bytes a URL
/// parser would otherwise read as query, fragment or separator (`?`, `#`,
/// `\`) or re-encode on its own (`"`, `<`, `>`, `` ` ``, `{`, `}`).
pub fn path(raw: &[u8]) -> String {
    let escaped = crate::dtp::escape::escape(raw);
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        match c {
            '?' | '#' | '\\' | '"' | '<' | '>' | '`' | '{' | '}' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtp_urls_become_http_with_the_default_port() {
        assert_eq!(
            base("dtp://mirror.example.org/debian").unwrap(),
            format!("http://mirror.example.org:{DEFAULT_PORT}/debian/")
        );
        assert_eq!(
            base("dtp://127.0.0.1:8080/kali/").unwrap(),
            "http://127.0.0.1:8080/kali/"
        );
        assert_eq!(
            base("dtp://[::1]/d").unwrap(),
            format!("http://[::1]:{DEFAULT_PORT}/d/")
        );
        assert_eq!(base("dtp://[::1]:9/d").unwrap(), "http://[::1]:9/d/");
    }

    #[test]
    fn http_urls_are_kept_with_a_slash() {
        assert_eq!(base("http://h:1/r").unwrap(), "http://h:1/r/");
        assert_eq!(base("https://h/r/").unwrap(), "https://h/r/");
    }

    #[test]
    fn paths_survive_url_parsing() {
        assert_eq!(path(b"a b/c?d#e%f"), "a%20b/c%3Fd%23e%25f");
        let url = file("http://h:1/r/", b"x/a?b#c\\d\"e");
        let parsed = reqwest::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/r/x/a%3Fb%23c%5Cd%22e");
        assert!(parsed.query().is_none() && parsed.fragment().is_none());
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "dtp://host",
            "dtp://host/",
            "dtp:///repo",
            "ftp://h/r",
            "rsync://h/r/",
            "dtp://h:x/r",
            "http://h/r?x=1",
        ] {
            assert!(
                matches!(base(url), Err(ClientError::BadUrl { .. })),
                "{url}"
            );
        }
    }
}
