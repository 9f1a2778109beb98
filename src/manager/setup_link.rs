//! `dsync -setup 'https://setup.krfoss.org/?repo=kali&save=/mirrors/kali'`:
//! KRFOSS hands out setup links whose query string holds a repository's
//! keys. Only keys that say where from and where to are taken from a link;
//! anything that runs a command (hooks, push) or pastes a config
//! (`ftpsync=true`) is refused by name, since a link comes from someone else.

/// Keys a link may set, in the order they are written into the file.
pub const KEYS: &[&str] = &[
    "repo",
    "save",
    "src",
    "timeset",
    "intradd",
    "intraadd",
    "dsync",
    "dsync-url",
    "mailto",
];

/// The `key=value` lines a link asks for, in [`KEYS`] order; an error names
/// what is wrong with the link.
pub fn lines(link: &str) -> Result<Vec<(String, String)>, String> {
    let query = match url::Url::parse(link) {
        Ok(url) => url.query().unwrap_or_default().to_string(),
        // Not a URL: the query alone (`repo=kali&save=/mirrors/kali`).
        Err(_) if link.contains('=') => link.trim_start_matches('?').to_string(),
        Err(e) => return Err(format!("{link} is no setup link ({e})")),
    };
    let mut found: Vec<(String, String)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !KEYS.contains(&key.as_ref()) {
            return Err(format!(
                "the link sets {key}=, which -setup does not take from a link (it takes {}); \
                 write other keys into the file yourself",
                KEYS.join(", ")
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("the link's {key}= holds a control character"));
        }
        if found.iter().any(|(k, _)| *k == key) {
            return Err(format!("the link sets {key}= twice"));
        }
        found.push((key.into_owned(), value.into_owned()));
    }
    for needed in ["repo", "save"] {
        if !found.iter().any(|(k, _)| k == needed) {
            return Err(format!(
                "the link has no {needed}= (it needs repo= and save=)"
            ));
        }
    }
    found.sort_by_key(|(k, _)| KEYS.iter().position(|known| known == k));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_link_gives_repo_and_save() {
        let got = lines("https://setup.krfoss.org/?save=%2Fmirrors%2Fkali&repo=kali").unwrap();
        assert_eq!(
            got,
            [
                ("repo".to_string(), "kali".to_string()),
                ("save".to_string(), "/mirrors/kali".to_string())
            ]
        );
        assert_eq!(lines("repo=a&save=/m/a&timeset=00,12").unwrap().len(), 3);
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for (link, why) in [
            (
                "https://x/?repo=a&save=/m&hook1=rm%20-rf%20/",
                "sets hook1=",
            ),
            ("https://x/?repo=a&save=/m&ftpsync=true", "sets ftpsync="),
            ("https://x/?repo=a&save=/m&push=host", "sets push="),
            ("https://x/?repo=a&save=/m%0Ahook1=x", "control character"),
            ("https://x/?repo=a&repo=b&save=/m", "repo= twice"),
            ("https://x/?repo=a", "no save="),
            ("https://x/", "no repo="),
            ("kali", "no setup link"),
        ] {
            let e = lines(link).unwrap_err();
            assert!(e.contains(why), "{link}: {e}");
        }
    }
}
