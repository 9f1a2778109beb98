//! One repository file, `repos/NAME.conf`.
//!
//! The same `key=value` syntax as `xync.conf` (see [`super::xync`]), with one twist:
//! after `ftpsync=true` the rest of the file is a pasted Debian `ftpsync.conf`,
//! evaluated by [`crate::shellconf`] and checked here with the repository file's own
//! line numbers. Repository keys (all lowercase, unlike ftpsync's variables) stay
//! ours wherever they stand: KRFOSS's manual writes `intraadd=` after
//! `ftpsync=true`.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::diag::Diagnostic;
use super::schedule::{TIMESET_FIX, timeset_problem};
use super::xync::{
    self, OtherFile, Parsed, duplicate, empty_value, has_space_or_control, malformed, parse_bool,
    parse_line, raw_lines, split_host_port, unknown_key, valid_host,
};
use crate::dtp::client::Redirects;
use crate::shellconf::{self, ShellConfError, Vars};

#[derive(Debug, Clone, PartialEq)]
pub struct Repo {
    /// `repo=`; defaults to the file name without `.conf`.
    pub name: String,
    pub file: PathBuf,
    /// `save=`: the mirror folder.
    pub save: PathBuf,
    /// `timeset=`: hours; `None` means every run.
    pub timeset: Option<Vec<u8>>,
    /// `src=rsync://host[:port]/module[/path]`: the upstream, explicitly.
    pub src: Option<String>,
    /// `intradd=` / `intraadd=`: `IP[:PORT]` of the intranet upstream.
    pub intradd: Option<String>,
    /// `ftpsync=true`: the rest of the file is a pasted ftpsync.conf.
    pub ftpsync: Option<FtpsyncBlock>,
    /// `dsync=true`: takes part in DTP.
    pub dsync: bool,
    /// `dsync-url=`: pull over DTP from this URL.
    pub dsync_url: Option<String>,
    /// `dtp-redirects=`: `same-origin` (the default: only to the URL's own
    /// scheme, host and port) or `any`.
    pub dtp_redirects: Redirects,
    /// `mailto=`: overrides the global one for this repository.
    pub mailto: Option<String>,
    /// `hook1=`..`hook5=` (or ftpsync's spelling `HOOK1=`..): commands run at
    /// ftpsync's hook points of a DTP sync (an ftpsync block has its own).
    pub hooks: [Option<String>; 5],
    /// `push=USER@HOST[:PORT], …`: downstream mirrors triggered over ssh
    /// (`sync:all`, as runmirrors' `all` type) after every successful sync.
    pub push: Vec<PushTarget>,
    /// `pushkey=`: the ssh key for those pushes (default `~/.ssh/pushmirror`).
    pub pushkey: Option<PathBuf>,
}

/// One `push=` downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub user: String,
    pub host: String,
    pub port: Option<u16>,
}

/// `USER@HOST[:PORT]`, with a host name or address that cannot be an option.
fn push_target(item: &str) -> Option<PushTarget> {
    let (user, rest) = item.split_once('@')?;
    let (host, port) = xync::split_host_port(rest)?;
    let user_ok = !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (user_ok && xync::valid_host(host) && !host.starts_with('-')).then(|| PushTarget {
        user: user.to_string(),
        host: host.to_string(),
        port,
    })
}

/// The ftpsync.conf text that follows `ftpsync=true`, with the line it starts on
/// so messages name lines of the repository file.
#[derive(Debug, Clone, PartialEq)]
pub struct FtpsyncBlock {
    /// The block's lines; those that set a repository key are left blank.
    pub text: String,
    pub first_line: usize,
    /// The block sets `RSYNC_HOST` or `RSYNC_SOURCE`. Without them the upstream
    /// is found as for any repository (intranet, `src=`, catalog, `api=`).
    pub names_upstream: bool,
}

impl FtpsyncBlock {
    /// Evaluate the block as ftpsync sources its config, on a fresh variable table
    /// holding only `HOME`, `LOGNAME` and `HOSTNAME` (from this process). An error's
    /// `line` is a line of the repository file `file`, not of the block.
    pub fn eval(&self, file: &Path) -> Result<Vars, ShellConfError> {
        let mut vars = base_vars();
        match shellconf::eval_str(&file.display().to_string(), &self.text, &mut vars) {
            Ok(()) => Ok(vars),
            Err(mut e) => {
                e.line = self.file_line(e.line);
                Err(e)
            }
        }
    }

    /// Line `n` (1-based) of the block as a line of the repository file.
    pub fn file_line(&self, n: usize) -> usize {
        self.first_line + n.max(1) - 1
    }

    /// The upstream the block names, as ftpsync's argv spells it
    /// (`RSYNC_SOURCE`, else `[USER@]HOST::PATH`), if it names one.
    pub fn pasted_upstream(&self, vars: &Vars) -> Option<String> {
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty());
        if let Some(source) = get("RSYNC_SOURCE") {
            return Some(source.to_string());
        }
        let host = get("RSYNC_HOST")?;
        let path = get("RSYNC_PATH").unwrap_or("debian");
        Some(match get("RSYNC_USER") {
            Some(user) => format!("{user}@{host}::{path}"),
            None => format!("{host}::{path}"),
        })
    }

    /// The repository-file line on which the block last assigns `name` (`NAME=`,
    /// `NAME+=`, `export NAME=`), if it does.
    pub fn assignment_line(&self, name: &str) -> Option<usize> {
        shellconf::assignment_line(&self.text, name).map(|n| self.file_line(n))
    }
}

fn base_vars() -> Vars {
    let mut vars = Vars::new();
    if let Some(home) = std::env::var_os("HOME") {
        vars.set("HOME", home.to_string_lossy());
        vars.export("HOME");
    }
    let logname = std::env::var("LOGNAME")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|l| !l.is_empty());
    if let Some(logname) = logname {
        vars.set("LOGNAME", logname);
        vars.export("LOGNAME");
    }
    vars.set("HOSTNAME", crate::host::name());
    vars
}

/// Every key of a repository file (`intraadd` is a second spelling of `intradd`).
pub const KEYS: &[&str] = &[
    "repo",
    "save",
    "timeset",
    "src",
    "intradd",
    "intraadd",
    "ftpsync",
    "dsync",
    "dsync-url",
    "dtp-redirects",
    "mailto",
    "hook1",
    "hook2",
    "hook3",
    "hook4",
    "hook5",
    "HOOK1",
    "HOOK2",
    "HOOK3",
    "HOOK4",
    "HOOK5",
    "push",
    "pushkey",
];

const GLOBAL_KEYS: OtherFile = OtherFile {
    keys: xync::KEYS,
    advice: "is a global setting: move it to xync.conf",
};

/// Folders a mirror may never be synced into: a sync deletes what the upstream lacks.
const SYSTEM_FOLDERS: &[&str] = &[
    "/", "/etc", "/usr", "/bin", "/boot", "/dev", "/proc", "/sys", "/var", "/home", "/root",
    "/sbin", "/lib", "/lib64", "/run", "/tmp", "/srv", "/opt",
];
/// Virtual file systems: nothing below them can be a mirror either.
const VIRTUAL_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// Parse one repository file. `None` when it has errors that make it unusable.
pub fn parse(path: &Path, text: &str) -> (Option<Repo>, Vec<Diagnostic>) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut diags = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut values: HashMap<&str, (usize, String)> = HashMap::new();
    let mut block: Option<(usize, FtpsyncBlock)> = None;

    let mut start = 0;
    for line in raw_lines(text) {
        let n = line.number;
        let piece = &text[start..line.end];
        start = line.end;
        let parsed = parse_line(line.text);
        if let Some((_, b)) = &mut block {
            let ours = matches!(&parsed, Parsed::Pair { key, .. } if is_key_in_block(key));
            if !ours {
                b.text.push_str(piece);
                continue;
            }
            // A blank line keeps the block's line numbers those of the file.
            b.text.push('\n');
        }
        let (key, value) = match parsed {
            Parsed::Blank => continue,
            Parsed::Malformed => {
                diags.push(malformed(path, &line, "save=/srv/mirrors/kali"));
                continue;
            }
            Parsed::Pair { key, value } => (key, value),
        };
        let canonical = if key == "intraadd" { "intradd" } else { key };
        let Some(&canonical) = KEYS.iter().find(|k| **k == canonical) else {
            diags.push(unknown(path, n, key, &value));
            continue;
        };
        if let Some(previous) = seen.insert(canonical, n) {
            diags.push(duplicate(path, n, canonical, previous));
        }
        if value.is_empty() {
            diags.push(empty_value(path, n, key));
            continue;
        }
        if canonical == "ftpsync" {
            match parse_bool(&value) {
                Some(true) if block.is_none() => {
                    let b = FtpsyncBlock {
                        text: String::new(),
                        first_line: n + 1,
                        names_upstream: false,
                    };
                    block = Some((n, b));
                }
                Some(_) => {}
                None => diags.push(bool_error(path, n, key, &value)),
            }
            continue;
        }
        values.insert(canonical, (n, value));
    }

    let get = |k: &str| values.get(k).map(|(n, v)| (*n, v.as_str()));

    // The name.
    let name = match get("repo") {
        Some((n, name)) => {
            if let Some(problem) = name_problem(name) {
                diags.push(Diagnostic::error(
                    path,
                    n,
                    format!("repo={name}: {problem}"),
                    format!(
                        "use letters, digits, '.', '_' and '-', e.g. repo={}",
                        safe_example(&stem)
                    ),
                ));
            } else if name != stem {
                diags.push(Diagnostic::warning(
                    path,
                    n,
                    format!("repo={name} differs from the file name {stem}.conf; the repository is called {name}"),
                    format!("rename the file to {name}.conf, or delete the repo= line to call it {stem}"),
                ));
            }
            name.to_string()
        }
        None => {
            if let Some(problem) = name_problem(&stem) {
                diags.push(Diagnostic::error(
                    path,
                    0,
                    format!("the file name gives the repository name `{stem}`, which {problem}"),
                    format!(
                        "rename the file to {}.conf, or add a line repo=NAME",
                        safe_example(&stem)
                    ),
                ));
            }
            stem.clone()
        }
    };

    let timeset = get("timeset").and_then(|(n, v)| match timeset_problem(v) {
        Ok(hours) => Some(hours),
        Err(problem) => {
            diags.push(Diagnostic::error(
                path,
                n,
                format!("timeset={v}: {problem}"),
                TIMESET_FIX,
            ));
            None
        }
    });

    let src = get("src").and_then(|(n, v)| match rsync_url_problem(v) {
        None => Some(v.to_string()),
        Some(problem) => {
            diags.push(Diagnostic::error(
                path,
                n,
                format!("src={v} {problem}"),
                format!(
                    "write src=rsync://HOST[:PORT]/MODULE/, e.g. src=rsync://rsync.example.org/{}/",
                    safe_example(&name)
                ),
            ));
            None
        }
    });

    let intradd = get("intradd").and_then(|(n, v)| match xync::intranet_address("intradd", v) {
        Ok(addr) => Some(addr),
        Err((message, fix)) => {
            diags.push(Diagnostic::error(path, n, message, fix));
            None
        }
    });

    let dsync = match get("dsync") {
        Some((n, v)) => parse_bool(v).unwrap_or_else(|| {
            diags.push(bool_error(path, n, "dsync", v));
            false
        }),
        None => false,
    };

    let dsync_url = get("dsync-url").and_then(|(n, v)| match dtp_url_problem(v) {
        None => Some(v.to_string()),
        Some(problem) => {
            diags.push(Diagnostic::error(
                path,
                n,
                format!("dsync-url={v} {problem}"),
                format!("write dsync-url=dtp://HOST/REPO (or http:// or https://), e.g. dsync-url=dtp://mirror.example.org/{}", safe_example(&name)),
            ));
            None
        }
    });

    let dtp_redirects = match get("dtp-redirects") {
        Some((n, v)) => redirects(v).unwrap_or_else(|| {
            diags.push(Diagnostic::error(
                path,
                n,
                format!("dtp-redirects={v} is not same-origin or any"),
                "write dtp-redirects=any to follow a DTP host's redirects to other hosts and ports, or delete the line (only the URL's own scheme, host and port)",
            ));
            Default::default()
        }),
        None => Default::default(),
    };

    let mailto = get("mailto").and_then(|(n, v)| match xync::mail_list("mailto", v) {
        Ok(m) => Some(m),
        Err((message, fix)) => {
            diags.push(Diagnostic::error(path, n, message, fix));
            None
        }
    });

    let hooks = [1, 2, 3, 4, 5].map(|n| {
        get(&format!("hook{n}"))
            .or_else(|| get(&format!("HOOK{n}")))
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
    });

    let mut push = Vec::new();
    if let Some((n, v)) = get("push") {
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match push_target(item) {
                Some(target) => push.push(target),
                None => diags.push(Diagnostic::error(
                    path,
                    n,
                    format!("push: `{item}` is not USER@HOST[:PORT]"),
                    "write the downstreams to trigger after each sync, e.g. push=mirror@mirror2.example.org, mirror@10.0.0.5:2222",
                )),
            }
        }
    }
    let pushkey = get("pushkey").map(|(_, v)| PathBuf::from(v));

    // The ftpsync block: evaluated like ftpsync would, and checked like ftpsync does.
    let mut to: Option<(usize, String)> = None;
    if let Some((ftpsync_line, b)) = &mut block {
        match b.eval(path) {
            Err(e) => diags.push(Diagnostic::error(
                path,
                e.line,
                format!("ftpsync block, column {}: {}", e.column, e.message),
                "ftpsync.conf lines may only assign variables (NAME=value), use export, comments and ${VAR:-default}: rewrite or delete this line",
            )),
            Ok(vars) => {
                check_ftpsync_vars(path, *ftpsync_line, b, &vars, &mut diags);
                b.names_upstream = b.pasted_upstream(&vars).is_some();
                if let Some(t) = vars.get("TO").filter(|t| !t.is_empty()) {
                    let line = b.assignment_line("TO").unwrap_or(*ftpsync_line);
                    to = Some((line, t.to_string()));
                }
            }
        }
    }

    // Where the mirror goes: save=, or the ftpsync block's TO.
    let save = match (get("save"), &to) {
        (Some((n, s)), Some((tn, t))) => {
            let save = check_folder(path, n, "save", s, &name, &mut diags);
            let to_dir = check_folder(path, *tn, "TO", t, &name, &mut diags);
            if let (Some(a), Some(b)) = (&save, &to_dir)
                && a != b
            {
                diags.push(Diagnostic::error(
                    path,
                    n,
                    format!(
                        "save={s} and the ftpsync block's TO={t} (line {tn}) name different folders"
                    ),
                    format!("make them the same folder, or delete the save= line to use TO={t}"),
                ));
            }
            save
        }
        (Some((n, s)), None) => check_folder(path, n, "save", s, &name, &mut diags),
        (None, Some((tn, t))) => check_folder(path, *tn, "TO", t, &name, &mut diags),
        (None, None) => {
            let fix = if block.is_some() {
                format!(
                    "add a line save=/srv/mirrors/{0} before ftpsync=true (or TO=\"/srv/mirrors/{0}/\" in the ftpsync block)",
                    safe_example(&name)
                )
            } else {
                format!("add a line save=/srv/mirrors/{}", safe_example(&name))
            };
            diags.push(Diagnostic::error(
                path,
                0,
                format!(
                    "no save= line: dsync does not know which folder repository {name} goes to"
                ),
                fix,
            ));
            None
        }
    };

    // More than one source: say which one is used (upstream::resolve's order).
    let at = |k: &str, set: bool| get(k).filter(|_| set).map(|(n, _)| n);
    let dsync_line = at("dsync-url", dsync_url.is_some());
    let src_line = at("src", src.is_some());
    let mut unused: Vec<(&str, usize, String)> = Vec::new();
    match &block {
        // ftpsync syncs with rsync, from the block's RSYNC_HOST, else from src= or
        // the catalog; intradd= with intra=true takes the place of both.
        Some((n, b)) => {
            if let Some(line) = dsync_line {
                unused.push(("dsync-url=", line, format!("ftpsync=true on line {n}")));
            }
            if let (Some(line), true) = (src_line, b.names_upstream) {
                let host = b.assignment_line("RSYNC_HOST").unwrap_or(*n);
                let used = format!("the ftpsync block's RSYNC_HOST on line {host}");
                unused.push(("src=", line, used));
            }
        }
        None => {
            let intra_line = at("intradd", intradd.is_some());
            let mut set = [
                ("dsync-url=", dsync_line),
                ("src=", src_line),
                ("intradd=", intra_line),
            ]
            .into_iter()
            .filter_map(|(k, n)| n.map(|n| (k, n)));
            if let Some((used, used_line)) = set.next() {
                let used = format!("{used} on line {used_line}");
                unused.extend(set.map(|(k, n)| (k, n, used.clone())));
            }
        }
    }
    for (ignored, line, used) in unused {
        diags.push(Diagnostic::warning(
            path,
            line,
            format!("{ignored} is not used: {used} decides where {name} syncs from"),
            format!("delete the {} line", ignored.trim_end_matches('=')),
        ));
    }

    xync::make_visible(&mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    let repo = Repo {
        name,
        file: path.to_path_buf(),
        save: save.expect("no error means a save folder"),
        timeset,
        src,
        intradd,
        ftpsync: block.map(|(_, b)| b),
        dsync,
        dsync_url,
        dtp_redirects,
        mailto,
        hooks,
        push,
        pushkey,
    };
    (Some(repo), diags)
}

/// A line of the ftpsync block that is a repository key: ftpsync's variables
/// are uppercase (`HOOK1=` stays ftpsync's), ours lowercase.
fn is_key_in_block(key: &str) -> bool {
    KEYS.contains(&key) && !key.bytes().any(|b| b.is_ascii_uppercase())
}

/// Every `*.conf` in `dir`, sorted by name, and all problems found.
pub fn load_all(dir: &Path) -> (Vec<Repo>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            diags.push(Diagnostic::error(
                dir,
                0,
                format!("cannot read the repository folder: {e}"),
                format!(
                    "mkdir -p {}  (then write one NAME.conf per repository in it)",
                    dir.display()
                ),
            ));
            return (Vec::new(), diags);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    files.sort();
    let (repos, mut found) = load_files(files);
    diags.append(&mut found);
    (repos, diags)
}

/// The repositories of `files`, in that order, and all problems found; a
/// name used twice keeps its first file.
pub fn load_files(files: Vec<PathBuf>) -> (Vec<Repo>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut repos: Vec<Repo> = Vec::new();
    for file in files {
        let text = match std::fs::read(&file).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                diags.push(Diagnostic::error(
                    &file,
                    0,
                    format!(
                        "not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                    "save the file as UTF-8 (e.g. iconv -t UTF-8), with key=value lines",
                ));
                continue;
            }
            Err(e) => {
                diags.push(Diagnostic::error(
                    &file,
                    0,
                    format!("cannot read: {e}"),
                    format!("make it readable: chmod 644 {}", file.display()),
                ));
                continue;
            }
        };
        let (repo, mut found) = parse(&file, &text);
        diags.append(&mut found);
        let Some(repo) = repo else { continue };
        if let Some(first) = repos.iter().find(|r| r.name == repo.name) {
            diags.push(Diagnostic::error(
                &file,
                xync::key_line(&text, "repo"),
                format!("repository name {} is already used by {}", repo.name, first.file.display()),
                format!(
                    "give one of them another name (repo=NAME, or rename the file), or delete one of {} and {}",
                    first.file.display(),
                    file.display()
                ),
            ));
            continue;
        }
        repos.push(repo);
    }
    (repos, diags)
}

fn unknown(path: &Path, line: usize, key: &str, value: &str) -> Diagnostic {
    let shell_like = key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if shell_like {
        return Diagnostic::warning(
            path,
            line,
            format!(
                "`{key}` looks like a line of ftpsync.conf, but no ftpsync=true comes before it (ignored)"
            ),
            "put a line ftpsync=true before the pasted ftpsync.conf (everything after it is read as ftpsync.conf)",
        );
    }
    unknown_key(path, line, key, value, KEYS, &GLOBAL_KEYS)
}

/// `dtp-redirects=`'s value.
fn redirects(value: &str) -> Option<Redirects> {
    match value {
        "same-origin" => Some(Redirects::SameOrigin),
        "any" => Some(Redirects::Any),
        _ => None,
    }
}

fn bool_error(path: &Path, line: usize, key: &str, value: &str) -> Diagnostic {
    let (message, fix) = xync::boolean(key, value).expect_err("not a boolean");
    Diagnostic::error(path, line, message, fix)
}

/// What is wrong with a repository name, which ends up in URLs, file names and logs.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.starts_with('-') || name.starts_with('.') {
        Some("must not start with '-' or '.'")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some("may only contain letters, digits, '.', '_' and '-'")
    } else {
        None
    }
}

fn safe_example(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    let cleaned = cleaned.trim_start_matches(['-', '.']);
    if cleaned.is_empty() {
        "kali".to_string()
    } else {
        cleaned.to_string()
    }
}

/// What is wrong with an upstream `rsync://[user@]host[:port]/module[/path]`, if anything.
pub(crate) fn rsync_url_problem(url: &str) -> Option<String> {
    if has_space_or_control(url) {
        return Some("contains whitespace or control characters".into());
    }
    let Some(rest) = url.strip_prefix("rsync://") else {
        if let Some((host, module)) = url.split_once("::") {
            return Some(format!(
                "is rsync's HOST::MODULE form; as a URL it is rsync://{host}/{module}"
            ));
        }
        return Some("is not an rsync:// URL".into());
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = match authority.rsplit_once('@') {
        Some((user, hostport)) => {
            if user.is_empty() || user.starts_with('-') || user.contains(':') {
                return Some(format!(
                    "has user `{user}`, which is not a plain user name (no password in the URL: use RSYNC_PASSWORD)"
                ));
            }
            hostport
        }
        None => authority,
    };
    let Some((host, port)) = split_host_port(hostport) else {
        return Some(format!("has `{hostport}`, which is not HOST or HOST:PORT"));
    };
    if !valid_host(host) {
        return Some(format!(
            "has host `{host}`, which is not a host name or IP address"
        ));
    }
    if port == Some(0) {
        return Some("has port 0".into());
    }
    let module = path.split('/').next().unwrap_or("");
    if module.is_empty() {
        return Some("names no module (rsync://HOST/MODULE/)".into());
    }
    if module.starts_with('-') {
        return Some(format!("has module `{module}`, which starts with '-'"));
    }
    None
}

fn dtp_url_problem(url: &str) -> Option<String> {
    if has_space_or_control(url) {
        return Some("contains whitespace or control characters".into());
    }
    let rest = ["dtp://", "http://", "https://"]
        .iter()
        .find_map(|s| url.strip_prefix(s));
    let Some(rest) = rest else {
        return Some("is not a dtp://, http:// or https:// URL".into());
    };
    let authority = rest.split('/').next().unwrap_or("");
    match split_host_port(authority) {
        Some((host, port)) if valid_host(host) && port != Some(0) => None,
        _ => Some(format!("has `{authority}`, which is not HOST or HOST:PORT")),
    }
}

/// `/a/./b/../c/` → `/a/c`; `None` for a path that is not absolute.
pub(crate) fn normalize(path: &str) -> Option<PathBuf> {
    if !path.starts_with('/') {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Check a mirror folder (`save=` or the ftpsync block's `TO=`); the normalized path.
fn check_folder(
    path: &Path,
    line: usize,
    key: &str,
    value: &str,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<PathBuf> {
    let example = format!("{key}=/srv/mirrors/{}", safe_example(name));
    if value.chars().any(char::is_control) {
        diags.push(Diagnostic::error(
            path,
            line,
            format!("{key}= contains control characters"),
            format!("write the folder's full path, e.g. {example}"),
        ));
        return None;
    }
    let Some(dir) = normalize(value) else {
        diags.push(Diagnostic::error(
            path,
            line,
            format!("{key}={value} is not an absolute path"),
            format!("write the folder's full path, starting with / (~ and $HOME are not expanded here), e.g. {example}"),
        ));
        return None;
    };
    let system = SYSTEM_FOLDERS.iter().any(|s| dir == Path::new(s))
        || VIRTUAL_TREES.iter().any(|s| dir.starts_with(s));
    if system {
        diags.push(Diagnostic::error(
            path,
            line,
            format!(
                "{key}={value} is a system folder: a sync deletes everything the upstream does not have, so dsync refuses it"
            ),
            format!("give the mirror a folder of its own, e.g. {example}"),
        ));
        return None;
    }
    Some(dir)
}

/// ftpsync's own refusals, reported before a sync instead of by it.
fn check_ftpsync_vars(
    path: &Path,
    ftpsync_line: usize,
    block: &FtpsyncBlock,
    vars: &Vars,
    diags: &mut Vec<Diagnostic>,
) {
    let set = |name: &str| vars.get(name).filter(|v| !v.is_empty());
    let line_of = |name: &str| block.assignment_line(name).unwrap_or(ftpsync_line);
    if set("ARCH_INCLUDE").is_some() && set("ARCH_EXCLUDE").is_some() {
        let line = line_of("ARCH_INCLUDE").max(line_of("ARCH_EXCLUDE"));
        diags.push(Diagnostic::error(
            path,
            line,
            "ARCH_INCLUDE and ARCH_EXCLUDE are both set; ftpsync refuses that",
            "keep only one of the two lines ARCH_INCLUDE= and ARCH_EXCLUDE=",
        ));
    }
    if let Some(t) = set("RSYNC_TRANSPORT")
        && !matches!(t, "undefined" | "ssh" | "ssl")
    {
        diags.push(Diagnostic::error(
            path,
            line_of("RSYNC_TRANSPORT"),
            format!("RSYNC_TRANSPORT={t} is not a transport ftpsync knows"),
            "write RSYNC_TRANSPORT=ssh or RSYNC_TRANSPORT=ssl, or delete the line for plain rsync",
        ));
    }
    for (name, example) in [
        ("LOGROTATE", "14"),
        ("UIPSLEEP", "1200"),
        ("UIPRETRIES", "3"),
    ] {
        if let Some(v) = set(name)
            && v.parse::<u64>().is_err()
        {
            diags.push(Diagnostic::error(
                path,
                line_of(name),
                format!("{name}={v} is not a number"),
                format!("write a whole number, e.g. {name}={example}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::diag::Severity;

    fn p(name: &str, text: &str) -> (Option<Repo>, Vec<Diagnostic>) {
        parse(&Path::new("/h/repos").join(name), text)
    }

    fn errors(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
        diags.iter().filter(|d| d.is_error()).collect()
    }

    #[test]
    fn two_line_form() {
        let (repo, d) = p("kali.conf", "repo=kali\nsave=/srv/mirrors/kali/\n");
        assert!(d.is_empty(), "{d:#?}");
        let repo = repo.unwrap();
        assert_eq!(repo.name, "kali");
        assert_eq!(repo.save, PathBuf::from("/srv/mirrors/kali"));
        assert_eq!(repo.timeset, None);
        assert!(!repo.dsync && repo.ftpsync.is_none());
    }

    #[test]
    fn name_defaults_to_stem_and_differing_name_warns() {
        let (repo, d) = p("ubuntu.conf", "save=/m/ubuntu\n");
        assert!(d.is_empty());
        assert_eq!(repo.unwrap().name, "ubuntu");
        let (repo, d) = p("ubuntu.conf", "repo=kali\nsave=/m/kali\n");
        assert_eq!(repo.unwrap().name, "kali");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].severity, d[0].line), (Severity::Warning, 1));
        assert!(
            d[0].fix.contains("rename the file to kali.conf"),
            "{}",
            d[0]
        );
    }

    #[test]
    fn every_key() {
        let text = "repo = deb\r\nsave=/m/deb\r\ntimeset=6, 18\r\nsrc=rsync://h.example:8873/debian/sub\r\n\
                    dsync=yes\r\nmailto=ops@example.org\r\n";
        let (repo, d) = p("deb.conf", text);
        assert!(d.is_empty(), "{d:#?}");
        let repo = repo.unwrap();
        assert_eq!(repo.timeset, Some(vec![6, 18]));
        assert_eq!(
            repo.src.as_deref(),
            Some("rsync://h.example:8873/debian/sub")
        );
        assert!(repo.dsync);
        assert_eq!(repo.mailto.as_deref(), Some("ops@example.org"));
        let (repo, d) = p("i.conf", "save=/m/i\nintraadd=10.1.1.50:873\n");
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(repo.unwrap().intradd.as_deref(), Some("10.1.1.50:873"));
        let (repo, d) = p("d.conf", "save=/m/d\ndsync-url=dtp://host.example/d\n");
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(
            repo.unwrap().dsync_url.as_deref(),
            Some("dtp://host.example/d")
        );
        let (repo, d) = p("d.conf", "save=/m/d\ndtp-redirects=any\n");
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(repo.unwrap().dtp_redirects, Redirects::Any);
        let (_, d) = p("d.conf", "save=/m/d\ndtp-redirects=yes\n");
        assert_eq!(errors(&d)[0].line, 2, "{d:#?}");
        assert!(errors(&d)[0].fix.contains("dtp-redirects=any"), "{d:#?}");
    }

    #[test]
    fn save_problems() {
        for (text, what) in [
            ("repo=x\n", "no save= line"),
            ("save=mirrors/x\n", "not an absolute path"),
            ("save=~/x\n", "not an absolute path"),
            ("save=/\n", "system folder"),
            ("save=/etc/\n", "system folder"),
            ("save=/var/lib/../../usr\n", "system folder"),
            ("save=/proc/self\n", "system folder"),
            ("save=/home\n", "system folder"),
        ] {
            let (repo, d) = p("x.conf", text);
            assert!(repo.is_none(), "{text}");
            let e = errors(&d);
            assert_eq!(e.len(), 1, "{text}: {d:#?}");
            assert!(e[0].message.contains(what), "{text}: {}", e[0]);
            assert!(e[0].fix.contains("/srv/mirrors/x"), "{text}: {}", e[0].fix);
        }
        let (repo, _) = p("x.conf", "save=/home/mirror/x\n");
        assert!(repo.is_some());
    }

    #[test]
    fn bad_timesets() {
        for bad in ["00:12", "오후01", "25", "6,,7"] {
            let (repo, d) = p("x.conf", &format!("save=/m/x\ntimeset={bad}\n"));
            assert!(repo.is_none());
            let e = errors(&d);
            assert_eq!(e.len(), 1, "{d:#?}");
            assert_eq!(e[0].line, 2);
            assert_eq!(
                e[0].fix,
                "write whole hours 00-23 separated by commas, e.g. timeset=00,06,12,18"
            );
        }
    }

    #[test]
    fn bad_sources() {
        for (line, what) in [
            ("src=http://h/x/", "not an rsync:// URL"),
            ("src=h::x", "rsync://h/x"),
            ("src=rsync://h", "names no module"),
            ("src=rsync://h/-x/", "starts with '-'"),
            ("src=rsync://-h/x/", "host `-h`, which"),
            ("src=rsync://h/a b/", "whitespace"),
            ("src=rsync://h:99999/x/", "not HOST or HOST:PORT"),
            ("src=rsync://h\u{1b}/x/", "control"),
            ("intradd=fileserver", "not IP or IP:PORT"),
            ("dsync-url=ftp://h/x", "not a dtp://"),
            ("dsync=maybe", "true, false"),
            ("ftpsync=perhaps", "true, false"),
            ("mailto=-f root", "mail addresses"),
        ] {
            let (repo, d) = p("x.conf", &format!("save=/m/x\n{line}\n"));
            assert!(repo.is_none(), "{line}");
            let e = errors(&d);
            assert_eq!(e.len(), 1, "{line}: {d:#?}");
            assert_eq!(e[0].line, 2, "{line}");
            assert!(e[0].message.contains(what), "{line}: {}", e[0]);
            assert!(!e[0].fix.is_empty());
        }
    }

    #[test]
    fn names_are_checked() {
        let (repo, d) = p("x.conf", "repo=-x\nsave=/m/x\n");
        assert!(repo.is_none());
        assert!(errors(&d)[0].message.contains("must not start"));
        let (repo, d) = p("my mirror.conf", "save=/m/x\n");
        assert!(repo.is_none());
        assert!(errors(&d)[0].fix.contains("mymirror.conf"), "{d:#?}");
    }

    #[test]
    fn push_targets() {
        let (repo, d) = p(
            "x.conf",
            "save=/m/x\npush=mirror@down.example, m2@10.0.0.5:2222\npushkey=/k\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let repo = repo.unwrap();
        assert_eq!(repo.push.len(), 2);
        assert_eq!(repo.push[1].port, Some(2222));
        assert_eq!(repo.pushkey.as_deref(), Some(Path::new("/k")));
        assert_eq!(repo.dtp_redirects, Default::default());
        for bad in [
            "down.example",
            "-oProxy@x",
            "m@-oProxyCommand=x",
            "m@h:99999",
        ] {
            let (repo, d) = p("x.conf", &format!("save=/m/x\npush={bad}\n"));
            assert!(repo.is_none() && d[0].line == 2, "{bad}: {d:?}");
        }
    }

    #[test]
    fn unknown_keys_and_pasted_ftpsync_lines() {
        let (repo, d) = p("x.conf", "save=/m/x\nsav=/m/y\nsyncps=3\nRSYNC_HOST=h\n");
        assert!(repo.is_some());
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].fix, "write save=/m/y");
        assert!(d[1].message.contains("global setting"), "{}", d[1]);
        assert!(d[2].fix.contains("ftpsync=true"), "{}", d[2]);
    }

    #[test]
    fn ftpsync_block_keeps_repository_keys_and_file_lines() {
        let text = "repo=debian\nftpsync=true\n# pasted\nTO=\"/srv/mirrors/debian/\"\nRSYNC_HOST=ftp.de.debian.org\ntimeset=00,12\nHOOK1=/bin/true\n";
        let (repo, d) = p("debian.conf", text);
        assert!(d.is_empty(), "{d:#?}");
        let repo = repo.unwrap();
        assert_eq!(repo.save, PathBuf::from("/srv/mirrors/debian"));
        // A lowercase repository key after ftpsync=true is ours; HOOK1 is ftpsync's.
        assert_eq!(repo.timeset, Some(vec![0, 12]));
        assert_eq!(repo.hooks, <[Option<String>; 5]>::default());
        let block = repo.ftpsync.unwrap();
        assert_eq!(block.first_line, 3);
        assert!(block.names_upstream);
        assert!(block.text.starts_with("# pasted\n"));
        assert!(!block.text.contains("timeset"), "{}", block.text);
        assert_eq!(block.assignment_line("TO"), Some(4));
        assert_eq!(block.assignment_line("RSYNC_HOST"), Some(5));
        assert_eq!(block.assignment_line("HOOK1"), Some(7));
    }

    #[test]
    fn the_manuals_intranet_example_is_a_repository_without_rsync_host() {
        // KRFOSS's manual, verbatim: intraadd= stands after ftpsync=true.
        let text = "# kali.conf 예시\nrepo=kali\nsave=/mirror/kali\nftpsync=true\n# 인트라넷 내부 미러 서버 주소\nintraadd=10.1.1.50\n";
        let (repo, d) = p("kali.conf", text);
        assert!(d.is_empty(), "{d:#?}");
        let repo = repo.unwrap();
        assert_eq!(repo.intradd.as_deref(), Some("10.1.1.50"));
        assert_eq!(repo.save, PathBuf::from("/mirror/kali"));
        assert!(!repo.ftpsync.unwrap().names_upstream);
        // A bad address in the block is named at its line.
        let (_, d) = p("kali.conf", "save=/m/kali\nftpsync=true\nintraadd=server\n");
        assert_eq!(errors(&d)[0].line, 3, "{d:#?}");
    }

    #[test]
    fn ftpsync_block_errors_name_file_lines() {
        let text = "save=/m/debian\nftpsync=true\nRSYNC_HOST=h\n\nif true; then X=1; fi\n";
        let (repo, d) = p("debian.conf", text);
        assert!(repo.is_none());
        let e = errors(&d);
        assert_eq!(e.len(), 1, "{d:#?}");
        assert_eq!(e[0].line, 5);
        assert!(e[0].message.starts_with("ftpsync block"), "{}", e[0]);
        assert!(e[0].fix.contains("may only assign variables"));
    }

    #[test]
    fn ftpsync_block_checks() {
        // Without RSYNC_HOST the upstream is found as for any repository.
        let (repo, d) = p("d.conf", "save=/m/d\nftpsync=true\nTO=/m/d\n");
        assert!(d.is_empty(), "{d:#?}");
        assert!(!repo.unwrap().ftpsync.unwrap().names_upstream);
        let (_, d) = p(
            "d.conf",
            "save=/m/d\nftpsync=true\nRSYNC_HOST=h\nTO=/m/other\n",
        );
        let e = errors(&d);
        assert_eq!(e.len(), 1, "{d:#?}");
        assert!(e[0].message.contains("different folders"));
        let (_, d) = p(
            "d.conf",
            "ftpsync=true\nRSYNC_HOST=h\nTO=/etc\nARCH_INCLUDE=amd64\nARCH_EXCLUDE=i386\nRSYNC_TRANSPORT=ftp\nLOGROTATE=x\n",
        );
        let lines: Vec<usize> = errors(&d).iter().map(|e| e.line).collect();
        assert_eq!(lines, [5, 6, 7, 3], "{d:#?}");
        let (repo, d) = p("d.conf", "save=/m/d\nftpsync=true\nRSYNC_HOST=h\n");
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(repo.unwrap().save, PathBuf::from("/m/d"));
    }

    #[test]
    fn several_sources_warn() {
        let (repo, d) = p("x.conf", "save=/m/x\nsrc=rsync://h/x/\nintradd=10.0.0.1\n");
        assert!(repo.is_some());
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].severity, d[0].line), (Severity::Warning, 3));
        assert!(d[0].message.contains("src= on line 2"), "{}", d[0]);
        // ftpsync=true: the block's RSYNC_HOST wins over src=; without it src= is used.
        let text = "save=/m/x\nsrc=rsync://h/x/\nftpsync=true\nRSYNC_HOST=up\n";
        let (_, d) = p("x.conf", text);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].line, 2);
        assert!(d[0].message.contains("RSYNC_HOST on line 4"), "{}", d[0]);
        let (_, d) = p("x.conf", "save=/m/x\nsrc=rsync://h/x/\nftpsync=true\n");
        assert!(d.is_empty(), "{d:#?}");
        let (_, d) = p("x.conf", "save=/m/x\ndsync-url=dtp://h/x\nftpsync=true\n");
        assert!(d[0].message.contains("ftpsync=true on line 3"), "{d:#?}");
        // intradd= beside ftpsync=true is the manual's intranet mode, not a conflict.
        let (_, d) = p(
            "x.conf",
            "save=/m/x\nintradd=10.0.0.1\nftpsync=true\nRSYNC_HOST=up\n",
        );
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn duplicate_spellings_warn() {
        let (repo, d) = p("x.conf", "save=/m/x\nintradd=10.0.0.1\nintraadd=10.0.0.2\n");
        assert_eq!(repo.unwrap().intradd.as_deref(), Some("10.0.0.2"));
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("line 2"));
    }

    #[test]
    fn url_checks() {
        assert_eq!(rsync_url_problem("rsync://[::1]:873/debian/"), None);
        assert_eq!(rsync_url_problem("rsync://user@h/m"), None);
        assert!(rsync_url_problem("rsync://u:pw@h/m").is_some());
        assert_eq!(normalize("/a/./b/../c/"), Some(PathBuf::from("/a/c")));
        assert_eq!(normalize("/../.."), Some(PathBuf::from("/")));
    }

    #[test]
    fn load_all_sorts_and_refuses_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.conf"), "save=/m/b\n").unwrap();
        std::fs::write(dir.path().join("a.conf"), "save=/m/a\n").unwrap();
        std::fs::write(dir.path().join("c.conf"), "repo=a\nsave=/m/c\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a repo").unwrap();
        let (repos, d) = load_all(dir.path());
        let names: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let e = errors(&d);
        assert_eq!(e.len(), 1, "{d:#?}");
        assert!(e[0].file.ends_with("c.conf") && e[0].line == 1);
        assert!(e[0].message.contains("already used"));
    }
}
