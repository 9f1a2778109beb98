//! Who the service runs as.
//!
//! Started as root, the service binds its port, opens its access log and
//! writes its pid file, then becomes `dtp-user` of xync.conf for good: the
//! account's groups (getgrouplist + setgroups, as initgroups does), its gid,
//! its uid, real, effective and saved alike. Then it checks that it did: the
//! ids, the groups, no capability left, every thread, and that setuid(0) and
//! setgid(0) now fail.
//!
//! Without `dtp-user`, a root service becomes `nobody`, as rsync's daemon
//! does (KRFOSS's guide just runs `dsync -service` as root): rsyncd's
//! default group is the system's "nobody" group, `nogroup` on Debian, with
//! no other supplementary groups; so `nogroup` here, else a group `nobody`,
//! else nobody's own primary group. Only a system without `nobody` refuses.
//!
//! Whoever it runs as, the service then checks its trees ([`check_trees`]):
//! a served folder the service's account can write is refused when the
//! service dropped root (warned about otherwise: one account that both syncs
//! and serves is the common single-user setup), and one it cannot read too.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fmt;
use std::path::Path;

use nix::unistd::{self, Gid, Group, Uid, User};
use rustix::fs::Access;

use super::config::Config;

/// The account `dtp-user` names, looked up while still root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Its groups as initgroups(3) sets them (the primary group included).
    pub groups: Vec<u32>,
    /// Chosen because xync.conf sets no `dtp-user` (see [`default_account`]).
    pub by_default: bool,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (uid {}, gid {})", self.name, self.uid, self.gid)
    }
}

/// Who the service is once it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Started as root: becomes this account right after binding.
    Drop(Account),
    /// Not started as root: stays who it is (`dtp-user` is not used).
    Stay,
}

/// Is this process root (effective uid 0)?
pub fn is_root() -> bool {
    unistd::geteuid().is_root()
}

/// Who the service is to be: as root, the account `dtp-user` names (refused
/// when unset, unknown or root); otherwise whoever runs it. `conf` is the
/// file that sets `dtp-user` (xync.conf), for messages. The error is the
/// whole message, its fix included.
pub fn identity(config: &Config, conf: &Path) -> Result<Identity, String> {
    if !is_root() {
        return Ok(Identity::Stay);
    }
    let Some(spec) = config.user.as_deref() else {
        return default_account().map(Identity::Drop).map_err(|problem| {
            format!(
                "the DTP service does not start as root: {conf} sets no dtp-user, and the \
                 default account {DEFAULT_USER} cannot be used ({problem}).\n\
                 Fix: add dtp-user=NAME to {conf}, NAME an unprivileged account that can read the \
                 served trees but not write them: the service binds its port as root, then runs \
                 as NAME.",
                conf = conf.display(),
            )
        });
    };
    resolve(spec)
        .map(Identity::Drop)
        .map_err(|problem| format!("dtp-user={spec} in {}: {problem}", conf.display()))
}

/// The account of a root service without `dtp-user`, as rsync's daemon.
pub const DEFAULT_USER: &str = "nobody";
/// rsyncd's default group names, in the order rsync's configure looks.
const DEFAULT_GROUPS: &[&str] = &["nogroup", "nobody"];

/// `nobody`, with rsyncd's default group and no other (see the module).
pub fn default_account() -> Result<Account, String> {
    let user = match User::from_name(DEFAULT_USER) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(format!("there is no account {DEFAULT_USER} here")),
        Err(e) => return Err(format!("cannot look {DEFAULT_USER} up: {e}")),
    };
    if user.uid.is_root() {
        return Err(format!("{DEFAULT_USER} is root (uid 0) here"));
    }
    let gid = DEFAULT_GROUPS
        .iter()
        .find_map(|name| Group::from_name(name).ok().flatten())
        .map_or(user.gid, |g| g.gid)
        .as_raw();
    if gid == 0 {
        return Err(format!("{DEFAULT_USER}'s group is root's (gid 0) here"));
    }
    Ok(Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid,
        groups: vec![gid],
        by_default: true,
    })
}

/// Look `spec` up: all digits is a uid, anything else a user name.
pub fn resolve(spec: &str) -> Result<Account, String> {
    let numeric = !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit());
    let found = if numeric {
        match spec.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => return Err(format!("{spec} is not a uid")),
        }
    } else {
        User::from_name(spec)
    };
    let user = match found {
        Ok(Some(user)) => user,
        Ok(None) => {
            return Err(format!(
                "no such account{}. Fix: create one (useradd --system --no-create-home \
                 --shell /usr/sbin/nologin dsync-dtp) or name an existing unprivileged one \
                 (e.g. dtp-user=nobody)",
                if numeric { " has this uid" } else { "" }
            ));
        }
        Err(e) => return Err(format!("cannot look the account up: {e}")),
    };
    if user.uid.is_root() {
        return Err(format!(
            "{} is root (uid 0). Fix: name an unprivileged account (e.g. dtp-user=nobody)",
            user.name
        ));
    }
    let name = CString::new(user.name.clone())
        .map_err(|_| format!("the account name {:?} holds a NUL byte", user.name))?;
    let groups = unistd::getgrouplist(&name, user.gid)
        .map_err(|e| format!("cannot read the groups of {}: {e}", user.name))?;
    Ok(Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: groups.into_iter().map(Gid::as_raw).collect(),
        by_default: false,
    })
}

/// Become `account` for good, then check it. Through the C library, whose
/// set*id calls change every thread of the process.
pub fn become_account(account: &Account) -> Result<(), String> {
    let groups: Vec<Gid> = account.groups.iter().copied().map(Gid::from_raw).collect();
    unistd::setgroups(&groups).map_err(|e| format!("setgroups {:?}: {e}", account.groups))?;
    unistd::setgid(Gid::from_raw(account.gid)).map_err(|e| format!("setgid: {e}"))?;
    unistd::setuid(Uid::from_raw(account.uid)).map_err(|e| format!("setuid: {e}"))?;
    verify(account)
}

/// The process is `account` and nothing more, and cannot become root again.
pub fn verify(account: &Account) -> Result<(), String> {
    let uids = unistd::getresuid().map_err(|e| format!("getresuid: {e}"))?;
    let gids = unistd::getresgid().map_err(|e| format!("getresgid: {e}"))?;
    let (uid, euid, gid, egid) = (
        unistd::getuid().as_raw(),
        unistd::geteuid().as_raw(),
        unistd::getgid().as_raw(),
        unistd::getegid().as_raw(),
    );
    let ids = [
        uid,
        euid,
        uids.saved.as_raw(),
        gid,
        egid,
        gids.saved.as_raw(),
    ];
    let want = [
        account.uid,
        account.uid,
        account.uid,
        account.gid,
        account.gid,
        account.gid,
    ];
    if ids != want {
        return Err(format!(
            "the ids (uid, euid, saved uid, gid, egid, saved gid) are {ids:?}, not {want:?}"
        ));
    }
    let groups: BTreeSet<u32> = unistd::getgroups()
        .map_err(|e| format!("getgroups: {e}"))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    let want_groups: BTreeSet<u32> = account.groups.iter().copied().collect();
    if groups != want_groups {
        return Err(format!(
            "the supplementary groups are {groups:?}, not {want_groups:?}"
        ));
    }
    if unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("setuid(0) still succeeds".into());
    }
    if unistd::setgid(Gid::from_raw(0)).is_ok() {
        return Err("setgid(0) still succeeds".into());
    }
    // What the kernel says, where /proc shows it: no capability kept, and
    // every thread (the runtime's too) changed.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for key in ["CapPrm:", "CapEff:", "CapAmb:"] {
            if let Some(value) = field(&status, key)
                && value.trim_start_matches('0').trim() != ""
            {
                return Err(format!("capabilities remain: {key} {value}"));
            }
        }
    }
    let uid_line = format!("{0}\t{0}\t{0}\t{0}", account.uid);
    let gid_line = format!("{0}\t{0}\t{0}\t{0}", account.gid);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue; // a thread that ended meanwhile
            };
            if field(&status, "Uid:") != Some(uid_line.as_str())
                || field(&status, "Gid:") != Some(gid_line.as_str())
            {
                return Err(format!(
                    "thread {} still has Uid {:?}, Gid {:?}",
                    task.file_name().to_string_lossy(),
                    field(&status, "Uid:"),
                    field(&status, "Gid:")
                ));
            }
        }
    }
    Ok(())
}

/// The value of `key` in a /proc status text.
fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// The account this process runs as, for messages.
pub fn current_account() -> String {
    let uid = unistd::geteuid();
    match User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

/// What the served trees look like to the service's account.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TreeCheck {
    /// Each a reason not to serve (the service dropped root).
    pub refusals: Vec<String>,
    /// Each a service-log line (a service not started as root).
    pub warnings: Vec<String>,
}

/// Check every served folder with access(2) as the account the service now
/// runs as. `dropped`: the service became `dtp-user` (problems refuse);
/// otherwise they are warnings.
pub fn check_trees(config: &Config, dropped: bool) -> TreeCheck {
    let who = current_account();
    let mut check = TreeCheck::default();
    for repo in &config.repos {
        let root = &repo.root;
        if let Err(e) = rustix::fs::access(root, Access::READ_OK | Access::EXEC_OK) {
            let problem = format!(
                "{}'s folder {} is not readable by {who}, the account the DTP service runs as \
                 ({}): it could serve nothing from it",
                repo.name,
                root.display(),
                std::io::Error::from(e)
            );
            let fix = if dropped {
                "Fix: let that account read it (chmod o+rx on it and on every folder above it) \
                 or set dtp-user= in xync.conf to an account that can"
            } else {
                "Fix: let the account the service runs as read it, or run the service as one that can"
            };
            push(&mut check, dropped, format!("{problem}. {fix}"));
            continue;
        }
        if writable(root) {
            let problem = format!(
                "{}'s folder {} is writable by {who}, the account the DTP service runs as: \
                 a flaw in the service could change the mirror",
                repo.name,
                root.display()
            );
            let fix = if dropped {
                "Fix: serve it as an account that cannot write it (dtp-user= in xync.conf; the \
                 mirror's owner must be another account), or make it read-only for the service \
                 (a read-only mount, as the hardened unit of dsync -startup does with ReadOnlyPaths=)"
            } else {
                "Recommended: start the service as root with dtp-user= in xync.conf naming an \
                 account that cannot write the mirror, or run it under the hardened systemd unit \
                 of dsync -startup (ReadOnlyPaths= makes the mirror read-only for it)"
            };
            push(&mut check, dropped, format!("{problem}. {fix}"));
        }
    }
    check
}

fn push(check: &mut TreeCheck, refuse: bool, line: String) {
    if refuse {
        check.refusals.push(line);
    } else {
        check.warnings.push(format!("warning: {line}"));
    }
}

/// May this process write `dir`? EACCES, EPERM and a read-only mount
/// (EROFS) say no.
fn writable(dir: &Path) -> bool {
    rustix::fs::access(dir, Access::WRITE_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtp::server::config::{self, Files, Loaded, tests::settings};

    /// The host files of `dir`, below `webroot`.
    fn load(dir: &Path, webroot: Option<&Path>) -> Result<Loaded, Vec<crate::diag::Diagnostic>> {
        config::load(&Files::in_dir(dir), settings(webroot), Vec::new())
    }

    #[test]
    fn nobody_resolves_by_name_and_uid() {
        let Ok(by_name) = resolve("nobody") else {
            eprintln!("SKIPPED nobody_resolves_by_name_and_uid: no account nobody here");
            return;
        };
        assert_ne!(by_name.uid, 0);
        assert!(by_name.groups.contains(&by_name.gid), "{by_name:?}");
        let by_uid = resolve(&by_name.uid.to_string()).unwrap();
        assert_eq!(by_uid, by_name);
    }

    #[test]
    fn root_and_unknown_accounts_are_refused() {
        let e = resolve("root").unwrap_err();
        assert!(
            e.contains("is root") && e.contains("dtp-user=nobody"),
            "{e}"
        );
        let e = resolve("0").unwrap_err();
        assert!(e.contains("is root"), "{e}");
        let e = resolve("no-such-account-dsync").unwrap_err();
        assert!(
            e.contains("no such account") && e.contains("useradd"),
            "{e}"
        );
        let e = resolve("4294967294").unwrap_err();
        assert!(e.contains("no such account has this uid"), "{e}");
    }

    #[test]
    fn root_without_dtp_user_becomes_nobody_as_rsyncd() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = load(dir.path(), None)
            .map_or_else(|_| panic!("an empty home loads"), |loaded| loaded.config);
        config.user = None;
        let Ok(nobody) = default_account() else {
            eprintln!(
                "SKIPPED root_without_dtp_user_becomes_nobody_as_rsyncd: no account nobody here"
            );
            return;
        };
        assert!(nobody.by_default && nobody.uid != 0 && nobody.gid != 0);
        assert_eq!(nobody.groups, [nobody.gid], "no other supplementary group");
        if let Ok(Some(nogroup)) = Group::from_name("nogroup") {
            assert_eq!(nobody.gid, nogroup.gid.as_raw());
        }
        match identity(&config, &dir.path().join("xync.conf")) {
            Ok(Identity::Stay) => assert!(!is_root()),
            Ok(Identity::Drop(account)) => {
                assert!(is_root());
                assert_eq!(account, nobody);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_writable_tree_is_a_warning_unless_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web/debian")).unwrap();
        std::fs::write(dir.path().join("list.conf"), "debian\n").unwrap();
        let config = load(dir.path(), Some(&dir.path().join("web")))
            .unwrap()
            .config;
        // Whoever runs this test created the folder: it can write it.
        let warned = check_trees(&config, false);
        assert!(warned.refusals.is_empty());
        assert_eq!(warned.warnings.len(), 1, "{warned:?}");
        assert!(warned.warnings[0].contains("is writable by"));
        assert!(warned.warnings[0].contains(&dir.path().join("web/debian").display().to_string()));
        let refused = check_trees(&config, true);
        assert!(refused.warnings.is_empty());
        assert_eq!(refused.refusals.len(), 1, "{refused:?}");
        assert!(refused.refusals[0].contains("ReadOnlyPaths="));
    }
}
