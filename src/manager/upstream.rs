//! Where a repository syncs from.
//!
//! The catalog is lines `NAME URL [URL…]` (`#` comments): the list shipped in
//! `etc/upstreams.conf`, with the operator's `HOME/upstreams.conf` replacing shipped
//! entries of the same name and adding new ones. The API (`api=` in xync.conf) answers
//! a JSON list `[{"name": "kali", "rsync": ["rsync://…/kali/"]}, …]`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::diag::Diagnostic;
use super::home::Home;
use super::repo::{Repo, rsync_url_problem};
use super::xync::{Global, split_host_port};

/// How a repository is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// rsync URLs to try in order (`rsync://host[:port]/module/`, always ending in `/`).
    Rsync(Vec<String>),
    /// `ftpsync=true`: ftpsync's two-stage sync. No URLs: the block names the
    /// upstream (`RSYNC_HOST` …); else these rsync URLs, in the order to try
    /// them, take the place of `RSYNC_HOST`/`RSYNC_PATH`.
    Ftpsync(Vec<String>),
    /// `dsync-url=`: DTP.
    Dtp(String),
}

/// The catalog shipped with dsync.
pub const SHIPPED_CATALOG: &str = include_str!("../../etc/upstreams.conf");
/// How the shipped catalog is named in messages.
pub const SHIPPED_CATALOG_NAME: &str = "etc/upstreams.conf (built into dsync)";
/// How long one API request may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an API answer is reused (one run asks once, not once per repository).
const API_CACHE: Duration = Duration::from_secs(60);

/// Repository name → rsync URLs, in the order to try them.
pub type Catalog = BTreeMap<String, Vec<String>>;

/// Resolve in this order: `dsync-url`, `src`, intranet mode (`intra=true` +
/// `intradd` of the repository, else of xync.conf → `rsync://IP[:PORT]/REPO/`),
/// the catalog (`home.catalog()` overriding the shipped `etc/upstreams.conf`),
/// then the API (`api=` in xync.conf). With `ftpsync=true` the sync is
/// ftpsync's, from the intranet address, else the block's `RSYNC_HOST`, else
/// `src=`, the catalog and the API. No source is an error naming the file.
pub fn resolve(repo: &Repo, global: &Global, home: &Home) -> Result<Source, Diagnostic> {
    let intranet = intranet_address(repo, global).map(|addr| intranet_url(addr, &repo.name));
    if let Some(block) = &repo.ftpsync {
        return match intranet {
            Some(url) => Ok(Source::Ftpsync(vec![url])),
            None if block.names_upstream => Ok(Source::Ftpsync(Vec::new())),
            None => rsync_urls(repo, global, home).map(Source::Ftpsync),
        };
    }
    if let Some(url) = &repo.dsync_url {
        return Ok(Source::Dtp(url.clone()));
    }
    // In general mode src= wins over the intranet address.
    match intranet.filter(|_| repo.src.is_none()) {
        Some(url) => Ok(Source::Rsync(vec![url])),
        None => rsync_urls(repo, global, home).map(Source::Rsync),
    }
}

/// The intranet upstream's address, when intranet mode is on.
pub fn intranet_address<'a>(repo: &'a Repo, global: &'a Global) -> Option<&'a str> {
    if !global.intra {
        return None;
    }
    repo.intradd.as_deref().or(global.intradd.as_deref())
}

/// `src=`, else the catalog, else the API.
fn rsync_urls(repo: &Repo, global: &Global, home: &Home) -> Result<Vec<String>, Diagnostic> {
    if let Some(src) = &repo.src {
        return Ok(vec![with_slash(src)]);
    }
    let (catalog, _) = load_catalog(home);
    if let Some(urls) = catalog.get(&repo.name) {
        return Ok(urls.clone());
    }
    let api_failure = match &global.api {
        Some(api) => match api_lookup(api, &repo.name) {
            Ok(Some(urls)) => return Ok(urls),
            Ok(None) => format!("; the API {api} does not list it"),
            Err(e) => format!("; asking the API {api} failed: {e}"),
        },
        None => String::new(),
    };
    let intranet = if (repo.intradd.is_some() || global.intradd.is_some()) && !global.intra {
        " (intradd= is only used with intra=true in xync.conf)"
    } else {
        ""
    };
    let what = if repo.ftpsync.is_some() {
        "no src=, no intradd= with intra=true, and no RSYNC_HOST in the ftpsync block"
    } else {
        "no src=, dsync-url= or ftpsync=true"
    };
    Err(Diagnostic::error(
        &repo.file,
        0,
        format!(
            "no upstream for repository {}: {what}, and it is not in the catalog{intranet}{api_failure}",
            repo.name
        ),
        format!(
            "add src=rsync://HOST/MODULE/ to {}, or the line `{} rsync://HOST/MODULE/` to {}",
            repo.file.display(),
            repo.name,
            home.catalog().display()
        ),
    ))
}

/// An upstream URL `rsync://[USER@]HOST[:PORT]/PATH/` as ftpsync's variables:
/// `RSYNC_SOURCE` is the URL itself (it carries the port, which ftpsync's
/// `HOST::PATH` cannot), `RSYNC_HOST` and `RSYNC_PATH` name it in traces and logs.
pub fn ftpsync_vars(url: &str) -> Vec<(&'static str, String)> {
    let rest = url.strip_prefix("rsync://").unwrap_or(url);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = split_host_port(host_port).map_or(host_port, |(host, _)| host);
    vec![
        ("RSYNC_SOURCE", url.to_string()),
        ("RSYNC_HOST", host.to_string()),
        ("RSYNC_PATH", path.trim_end_matches('/').to_string()),
    ]
}

/// `rsync://IP[:PORT]/REPO/` for an `intradd=` value.
pub fn intranet_url(intradd: &str, repo: &str) -> String {
    let (host, port) = split_host_port(intradd).unwrap_or((intradd, None));
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match port {
        Some(port) => format!("rsync://{host}:{port}/{repo}/"),
        None => format!("rsync://{host}/{repo}/"),
    }
}

/// The shipped catalog with the operator's file (if any) laid over it, and the
/// problems found in the operator's file.
pub fn load_catalog(home: &Home) -> (Catalog, Vec<Diagnostic>) {
    let (mut catalog, _) = parse_catalog(Path::new(SHIPPED_CATALOG_NAME), SHIPPED_CATALOG);
    let path = home.catalog();
    let text = match std::fs::read(&path).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => {
            let d = Diagnostic::error(
                &path,
                0,
                "not UTF-8 text",
                "save the file as UTF-8, with lines `NAME rsync://HOST/MODULE/`",
            );
            return (catalog, vec![d]);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (catalog, Vec::new()),
        Err(e) => {
            let d = Diagnostic::error(
                &path,
                0,
                format!("cannot read: {e}"),
                format!("make it readable: chmod 644 {}", path.display()),
            );
            return (catalog, vec![d]);
        }
    };
    let (local, diags) = parse_catalog(&path, &text);
    catalog.extend(local);
    (catalog, diags)
}

/// Parse catalog lines `NAME URL [URL…]`. Entries without a usable URL are left out.
pub fn parse_catalog(path: &Path, text: &str) -> (Catalog, Vec<Diagnostic>) {
    let mut catalog = Catalog::new();
    let mut lines: HashMap<String, usize> = HashMap::new();
    let mut diags = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.split_once('#').map_or(line, |(before, _)| before);
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let mut urls = Vec::new();
        for url in words {
            match rsync_url_problem(url) {
                None => urls.push(with_slash(url)),
                Some(problem) => diags.push(Diagnostic::error(
                    path,
                    n,
                    format!("{name}: {url} {problem}"),
                    format!("write rsync URLs after the name, e.g. {name} rsync://rsync.example.org/{name}/"),
                )),
            }
        }
        if urls.is_empty() {
            if diags.last().is_none_or(|d| d.line != n) {
                diags.push(Diagnostic::error(
                    path,
                    n,
                    format!("{name} has no upstream URL"),
                    format!("write the name and its rsync URLs on one line, e.g. {name} rsync://rsync.example.org/{name}/"),
                ));
            }
            continue;
        }
        if let Some(previous) = lines.insert(name.to_string(), n) {
            diags.push(Diagnostic::warning(
                path,
                n,
                format!("{name} is listed again (also on line {previous}); this line is used"),
                format!("delete line {previous} or line {n}"),
            ));
        }
        catalog.insert(name.to_string(), urls);
    }
    (catalog, diags)
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

#[derive(serde::Deserialize)]
struct ApiEntry {
    name: String,
    #[serde(default)]
    rsync: Option<ApiUrls>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ApiUrls {
    One(String),
    Many(Vec<String>),
}

type ApiAnswer = Result<Vec<(String, Vec<String>)>, String>;

static API_ANSWERS: Mutex<Vec<(String, Instant, ApiAnswer)>> = Mutex::new(Vec::new());

/// The rsync URLs the API lists for `name`; `Ok(None)` if it does not list it.
fn api_lookup(api: &str, name: &str) -> Result<Option<Vec<String>>, String> {
    let cached = {
        let answers = API_ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .iter()
            .find(|(url, at, _)| url == api && at.elapsed() < API_CACHE)
            .map(|(_, _, answer)| answer.clone())
    };
    let answer = match cached {
        Some(answer) => answer,
        None => {
            let answer = fetch_api(api);
            let mut answers = API_ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
            answers.retain(|(url, at, _)| url != api && at.elapsed() < API_CACHE);
            answers.push((api.to_string(), Instant::now(), answer.clone()));
            answer
        }
    };
    let entries = answer?;
    let Some((_, urls)) = entries.iter().find(|(n, _)| n == name) else {
        return Ok(None);
    };
    if urls.is_empty() {
        return Err(format!("it lists {name} without a usable rsync:// URL"));
    }
    Ok(Some(urls.clone()))
}

fn fetch_api(api: &str) -> ApiAnswer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(API_TIMEOUT))
        .build()
        .into();
    let mut response = agent
        .get(api)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| e.to_string())?;
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let entries: Vec<ApiEntry> = serde_json::from_str(&body)
        .map_err(|e| format!("its answer is not the expected JSON list: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let urls = match e.rsync {
                Some(ApiUrls::One(u)) => vec![u],
                Some(ApiUrls::Many(us)) => us,
                None => Vec::new(),
            };
            let urls = urls
                .iter()
                .filter(|u| rsync_url_problem(u).is_none())
                .map(|u| with_slash(u))
                .collect();
            (e.name, urls)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo(name: &str) -> Repo {
        Repo {
            name: name.into(),
            file: PathBuf::from(format!("/h/repos/{name}.conf")),
            save: PathBuf::from("/m").join(name),
            timeset: None,
            src: None,
            intradd: None,
            ftpsync: None,
            dsync: false,
            dsync_url: None,
            dtp_redirects: Default::default(),
            mailto: None,
            hooks: Default::default(),
            push: Vec::new(),
            pushkey: None,
        }
    }

    #[test]
    fn shipped_catalog_is_clean_and_complete() {
        let (catalog, diags) = parse_catalog(Path::new("x"), SHIPPED_CATALOG);
        assert!(diags.is_empty(), "{diags:#?}");
        for name in [
            "debian",
            "debian-security",
            "ubuntu",
            "ubuntu-releases",
            "kali",
            "rocky",
            "almalinux",
            "archlinux",
            "alpine",
            "fedora-enchilada",
            "centos-stream",
            "opensuse",
            "linuxmint",
            "raspbian",
            "termux",
            "epel",
        ] {
            let urls = catalog
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(
                urls.iter()
                    .all(|u| u.starts_with("rsync://") && u.ends_with('/'))
            );
        }
    }

    #[test]
    fn catalog_lines() {
        let text = "# comment\nkali rsync://a/kali rsync://b/kali/ # two\n\nbad\nx http://h/x\nkali rsync://c/kali/\n";
        let (c, d) = parse_catalog(Path::new("/h/upstreams.conf"), text);
        assert_eq!(c["kali"], ["rsync://c/kali/"]);
        assert!(!c.contains_key("bad") && !c.contains_key("x"));
        let lines: Vec<(usize, bool)> = d.iter().map(|d| (d.line, d.is_error())).collect();
        assert_eq!(lines, [(4, true), (5, true), (6, false)], "{d:#?}");
    }

    #[test]
    fn order_of_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::write(
            home.catalog(),
            "kali rsync://127.0.0.1:9/kali\nmine rsync://127.0.0.1:9/m/\n",
        )
        .unwrap();
        let mut g = Global::default();
        let mut r = repo("kali");
        assert_eq!(
            resolve(&r, &g, &home),
            Ok(Source::Rsync(vec!["rsync://127.0.0.1:9/kali/".into()]))
        );
        r.intradd = Some("10.1.1.50".into());
        assert_eq!(
            resolve(&r, &g, &home),
            Ok(Source::Rsync(vec!["rsync://127.0.0.1:9/kali/".into()]))
        );
        g.intra = true;
        assert_eq!(
            resolve(&r, &g, &home),
            Ok(Source::Rsync(vec!["rsync://10.1.1.50/kali/".into()]))
        );
        r.src = Some("rsync://s/k".into());
        assert_eq!(
            resolve(&r, &g, &home),
            Ok(Source::Rsync(vec!["rsync://s/k/".into()]))
        );
        r.dsync_url = Some("dtp://d/kali".into());
        assert_eq!(
            resolve(&r, &g, &home),
            Ok(Source::Dtp("dtp://d/kali".into()))
        );
        let mut block = super::super::repo::FtpsyncBlock {
            text: String::new(),
            first_line: 2,
            names_upstream: true,
        };
        r.ftpsync = Some(block.clone());
        // Intranet mode takes the place of the block's RSYNC_HOST.
        let intra = Ok(Source::Ftpsync(vec!["rsync://10.1.1.50/kali/".into()]));
        assert_eq!(resolve(&r, &g, &home), intra);
        g.intra = false;
        assert_eq!(resolve(&r, &g, &home), Ok(Source::Ftpsync(Vec::new())));
        // A block without RSYNC_HOST: src=, else the catalog.
        block.names_upstream = false;
        r.ftpsync = Some(block);
        let src = Ok(Source::Ftpsync(vec!["rsync://s/k/".into()]));
        assert_eq!(resolve(&r, &g, &home), src);
        r.src = None;
        let catalog = Ok(Source::Ftpsync(vec!["rsync://127.0.0.1:9/kali/".into()]));
        assert_eq!(resolve(&r, &g, &home), catalog);
        // xync.conf's intradd= serves every repository without its own.
        r.intradd = None;
        g.intra = true;
        g.intradd = Some("10.9.9.9:8873".into());
        let global = Ok(Source::Ftpsync(vec!["rsync://10.9.9.9:8873/kali/".into()]));
        assert_eq!(resolve(&r, &g, &home), global);
        r.ftpsync = None;
        r.dsync_url = None;
        let general = Ok(Source::Rsync(vec!["rsync://10.9.9.9:8873/kali/".into()]));
        assert_eq!(resolve(&r, &g, &home), general);
        g.intra = false;
        // A shipped name not overridden locally.
        assert!(matches!(
            resolve(&repo("alpine"), &g, &home),
            Ok(Source::Rsync(_))
        ));
        let e = resolve(&repo("nowhere"), &g, &home).unwrap_err();
        assert!(e.is_error() && e.file.ends_with("nowhere.conf"));
        assert!(e.fix.contains("nowhere rsync://HOST/MODULE/"), "{e}");
    }

    #[test]
    fn upstream_urls_as_ftpsync_variables() {
        let vars = ftpsync_vars("rsync://10.1.1.50:8873/kali/");
        assert_eq!(
            vars,
            [
                ("RSYNC_SOURCE", "rsync://10.1.1.50:8873/kali/".to_string()),
                ("RSYNC_HOST", "10.1.1.50".to_string()),
                ("RSYNC_PATH", "kali".to_string()),
            ]
        );
        let vars = ftpsync_vars("rsync://u@[fd00::1]/debian/sub/");
        assert_eq!(vars[1].1, "fd00::1");
        assert_eq!(vars[2].1, "debian/sub");
    }

    #[test]
    fn intranet_urls() {
        assert_eq!(intranet_url("10.1.1.50", "kali"), "rsync://10.1.1.50/kali/");
        assert_eq!(
            intranet_url("10.1.1.50:8873", "kali"),
            "rsync://10.1.1.50:8873/kali/"
        );
        assert_eq!(intranet_url("fd00::1", "kali"), "rsync://[fd00::1]/kali/");
        assert_eq!(
            intranet_url("[fd00::1]:873", "kali"),
            "rsync://[fd00::1]:873/kali/"
        );
    }
}
