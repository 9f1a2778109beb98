//! `dsync -startup`: install the systemd unit of the DTP service and, where
//! systemd runs, enable and start it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::service::{exe_path, prepare, running, stop};
use crate::dtp::server::{self, Config};
use crate::exit;
use crate::manager::home::{Home, user_name};
use crate::manager::xync;

/// The systemd unit `-startup` installs, with `@...@` placeholders.
pub const UNIT_TEMPLATE: &str = include_str!("../../../etc/systemd/dsync-dtp.service");
pub const UNIT_NAME: &str = "dsync-dtp.service";
/// Where `-startup` writes the unit; `DSYNC_SYSTEMD_UNIT_DIR` replaces it (for
/// tests: then systemctl is not run).
const UNIT_DIR: &str = "/etc/systemd/system";

/// `-startup`: install the systemd unit and, where systemd runs, enable and
/// start it.
pub fn startup(home: &Home) -> u8 {
    let config = match prepare(home) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let unit = match unit_for(home, &config) {
        Ok(unit) => unit,
        Err(message) => {
            eprintln!("dsync -startup: {message}");
            return exit::FAILURE;
        }
    };
    if std::fs::metadata(&home.root).is_ok_and(|m| m.uid() == 0) {
        println!(
            "dsync -startup: {} is root's: the unit starts the service as root, which binds its \
             port and then runs as {} (its only capabilities are the ones that drop root)",
            home.root.display(),
            config.user.as_deref().map_or_else(
                || format!(
                    "{} (no dtp-user= in xync.conf; as rsync's daemon)",
                    server::privileges::DEFAULT_USER
                ),
                |u| format!("dtp-user={u}")
            )
        );
    }
    let custom_dir = std::env::var_os("DSYNC_SYSTEMD_UNIT_DIR").map(PathBuf::from);
    let path = custom_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(UNIT_DIR))
        .join(UNIT_NAME);
    if let Err(e) = std::fs::write(&path, unit) {
        eprintln!("dsync -startup: cannot write {}: {e}", path.display());
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            eprintln!(
                "dsync -startup: run it as root: sudo {} -home {} -startup",
                exe_path().display(),
                home.root.display()
            );
        }
        return exit::FAILURE;
    }
    println!("dsync -startup: wrote {}", path.display());
    if custom_dir.is_some() || !Path::new("/run/systemd/system").is_dir() {
        println!(
            "dsync -startup: systemd is not running here; where it is, run: \
             systemctl daemon-reload && systemctl enable --now {UNIT_NAME}"
        );
        return exit::OK;
    }
    if let Some(running) = running(home) {
        println!(
            "dsync -startup: stopping the DTP service started by hand (pid {}) so systemd runs it",
            running.pid
        );
        stop(home);
    }
    for args in [&["daemon-reload"][..], &["enable", "--now", UNIT_NAME]] {
        if let Err(message) = systemctl(args) {
            eprintln!("dsync -startup: {message}");
            return exit::FAILURE;
        }
    }
    println!("dsync -startup: {UNIT_NAME} is enabled and started (systemctl status {UNIT_NAME})");
    exit::OK
}

fn systemctl(args: &[&str]) -> Result<(), String> {
    let status = Command::new("systemctl")
        .args(args)
        .status()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("systemctl {} failed ({status})", args.join(" ")))
    }
}

/// The values a unit is made of.
#[derive(Debug, Clone)]
pub struct UnitValues {
    pub dsync: PathBuf,
    pub home: PathBuf,
    pub user: String,
    pub webroot: Option<PathBuf>,
    /// The service listens on a port below 1024 (needs CAP_NET_BIND_SERVICE).
    pub low_port: bool,
}

impl UnitValues {
    /// The unit starts the service as root, which then drops root itself.
    fn drops_root(&self) -> bool {
        self.user == "root"
    }
}

fn unit_for(home: &Home, config: &Config) -> Result<String, String> {
    let owner = std::fs::metadata(&home.root)
        .map_err(|e| format!("cannot read {}: {e}", home.root.display()))?
        .uid();
    let (global, _) = xync::load(&home.xync_conf());
    let dsync = std::fs::canonicalize(exe_path()).unwrap_or_else(|_| exe_path());
    render_unit(
        UNIT_TEMPLATE,
        &UnitValues {
            dsync,
            home: home.root.clone(),
            // uid 0 under any name is written as root (what drops_root looks for).
            user: if owner == 0 {
                "root".into()
            } else {
                user_name(owner)
            },
            webroot: global.webroot,
            low_port: config.listen.port() < 1024,
        },
    )
}

/// Fill in the template's placeholders.
pub fn render_unit(template: &str, v: &UnitValues) -> Result<String, String> {
    let path = |p: &Path| -> Result<String, String> {
        let s = p
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", p.display()))?;
        if !p.is_absolute()
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"'\\$".contains(c))
        {
            return Err(format!(
                "{s} cannot go into a systemd unit as it is (absolute paths without spaces, quotes, backslashes or $ only)"
            ));
        }
        Ok(s.replace('%', "%%")) // systemd specifiers
    };
    if v.user.is_empty() || v.user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{}` is not a user name for a unit",
            v.user.escape_default()
        ));
    }
    let caps = match (v.drops_root(), v.low_port) {
        // Root has its bounding set; nothing ambient is needed.
        (true, false) => "CapabilityBoundingSet=CAP_SETUID CAP_SETGID",
        (true, true) => "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_NET_BIND_SERVICE",
        (false, true) => {
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE"
        }
        (false, false) => "CapabilityBoundingSet=",
    };
    // @privileged (denied above) holds setuid, setgid and setgroups: allowed
    // again for a root service to drop root with; none other comes back.
    let setuid = if v.drops_root() {
        "SystemCallFilter=@setuid"
    } else {
        "# (not root: no call that changes ids is needed)"
    };
    let webroot = match &v.webroot {
        Some(w) => Some(path(w)?),
        None => None,
    };
    let mut out = String::new();
    for line in template.lines() {
        let line = match (&webroot, line.contains("@WEBROOT@")) {
            (None, true) => {
                "# (webroot= is not set in xync.conf: nothing more to make read-only)".to_string()
            }
            // `-`: a webroot missing at boot must not keep the service down.
            (Some(w), true) => line.replace("@WEBROOT@", &format!("-{w}")),
            _ => line.to_string(),
        };
        let line = line
            .replace("@DSYNC@", &path(&v.dsync)?)
            .replace("@HOME@", &path(&v.home)?)
            .replace("@USER@", &v.user)
            .replace("@CAPABILITIES@", caps)
            .replace("@SETUID@", setuid);
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> UnitValues {
        UnitValues {
            dsync: PathBuf::from("/usr/local/bin/dsync"),
            home: PathBuf::from("/home/mirror/dxync"),
            user: "mirror".into(),
            webroot: Some(PathBuf::from("/srv/mirrors")),
            low_port: false,
        }
    }

    #[test]
    fn unit_is_filled_in_and_hardened() {
        let unit = render_unit(UNIT_TEMPLATE, &values()).unwrap();
        for want in [
            "ExecStart=\"/usr/local/bin/dsync\" -home \"/home/mirror/dxync\" -service -foreground",
            "User=mirror",
            "ReadWritePaths=/home/mirror/dxync",
            "ReadOnlyPaths=-/srv/mirrors",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
        ] {
            assert!(unit.contains(want), "{want}\n{unit}");
        }
        let lines_with_placeholders: Vec<&str> = unit
            .lines()
            // Placeholders are @NAME@; systemd's syscall sets (@system-service) stay.
            .filter(|l| {
                !l.starts_with('#')
                    && l.split('@').skip(1).step_by(2).any(|w| {
                        !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    })
            })
            .collect();
        assert!(
            lines_with_placeholders.is_empty(),
            "{lines_with_placeholders:?}"
        );
    }

    #[test]
    fn unit_variants() {
        let mut v = values();
        v.webroot = None;
        v.low_port = true;
        v.home = PathBuf::from("/srv/100%/dx");
        let unit = render_unit(UNIT_TEMPLATE, &v).unwrap();
        assert!(!unit.contains("ReadOnlyPaths="), "{unit}");
        assert!(unit.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"));
        assert!(unit.contains("ReadWritePaths=/srv/100%%/dx"));
        v.home = PathBuf::from("/home/my mirror");
        assert!(render_unit(UNIT_TEMPLATE, &v).is_err());
    }

    #[test]
    fn a_root_unit_keeps_only_what_drops_root() {
        let mut v = values();
        v.user = "root".into();
        let unit = render_unit(UNIT_TEMPLATE, &v).unwrap();
        for want in [
            "User=root\n",
            "CapabilityBoundingSet=CAP_SETUID CAP_SETGID\n",
            "SystemCallFilter=~@privileged @resources\nSystemCallFilter=@setuid\n",
            "NoNewPrivileges=yes",
        ] {
            assert!(unit.contains(want), "{want}\n{unit}");
        }
        assert!(!unit.contains("AmbientCapabilities"), "{unit}");
        v.low_port = true;
        let unit = render_unit(UNIT_TEMPLATE, &v).unwrap();
        assert!(
            unit.contains("CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_NET_BIND_SERVICE\n")
        );
        // Not root: no set*id call comes back.
        let unit = render_unit(UNIT_TEMPLATE, &values()).unwrap();
        assert!(!unit.contains("SystemCallFilter=@setuid"), "{unit}");
    }
}
