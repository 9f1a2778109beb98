//! What `dsync -test` checks of this machine and of the home beyond the
//! configuration's own syntax: `ipadd=` addresses the machine really has,
//! and KRFOSS plugin files, which dsync does not run.

use std::net::{IpAddr, UdpSocket};
use std::path::Path;

use super::diag::Diagnostic;
use super::home::Home;
use super::xync::{Global, key_line};

/// Each `ipadd=` address this machine cannot bind, as an error: every
/// rsync from it would fail (rsync's exit 10), retried, for nothing.
pub fn ipadd(home: &Home, global: &Global) -> Vec<Diagnostic> {
    let conf = home.xync_conf();
    let line = key_line(&std::fs::read_to_string(&conf).unwrap_or_default(), "ipadd");
    global
        .ipadd
        .iter()
        .filter_map(|address| {
            let why = unbindable(address)?;
            Some(Diagnostic::error(
                &conf,
                line,
                format!("ipadd: {address} is not an address of this machine ({why})"),
                "list only this machine's own addresses (see `ip -brief address`), or delete \
                 the ipadd= line to let the system choose",
            ))
        })
        .collect()
}

/// Why a sync could not bind `address` locally; `None` when it can.
fn unbindable(address: &str) -> Option<String> {
    let ip: IpAddr = match address.parse() {
        Ok(ip) => ip,
        // xync.conf's own check names addresses that are not IPs.
        Err(_) => return None,
    };
    // A UDP bind to port 0 asks the kernel the question rsync's bind asks,
    // without listening or sending anything.
    match UdpSocket::bind((ip, 0)) {
        Ok(_) => None,
        Err(e) => Some(format!("cannot bind it: {}", crate::process::strerror(&e))),
    }
}

/// KRFOSS's plugin files (`HOME/plugins/*.dsp`), each named: dsync does not
/// run them, and says what does their job here.
pub fn plugins(home: &Home) -> Vec<Diagnostic> {
    let dir = home.root.join("plugins");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dsp"))
        .collect();
    files.sort();
    files.iter().map(|file| plugin(file)).collect()
}

fn plugin(file: &Path) -> Diagnostic {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let instead = if name.contains("startup") {
        "`dsync -startup` installs and starts the DTP service as a systemd unit (as root; a \
         non-root user runs `dsync -service` from cron's @reboot or a user unit)"
    } else {
        "webhookurl= and mailto= send sync results; hook1= … hook5= run commands at ftpsync's \
         points of a sync; systemd units or cron run anything else"
    };
    Diagnostic::warning(
        file,
        0,
        "KRFOSS plugin files (*.dsp) are not supported: dsync does not run this file",
        format!("use what dsync has instead: {instead}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_and_a_foreign_address_does_not() {
        assert_eq!(unbindable("127.0.0.1"), None);
        // TEST-NET-3: no machine has it.
        let why = unbindable("203.0.113.77").expect("not ours");
        assert!(why.contains("Cannot assign requested address"), "{why}");
    }

    #[test]
    fn every_plugin_file_is_named_with_what_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        assert!(plugins(&home).is_empty());
        std::fs::create_dir_all(home.root.join("plugins")).unwrap();
        for name in ["user-startup.dsp", "notify.dsp", "README"] {
            std::fs::write(home.root.join("plugins").join(name), "x").unwrap();
        }
        let d = plugins(&home);
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(d[0].file.ends_with("notify.dsp") && d[0].fix.contains("webhookurl="));
        assert!(d[1].file.ends_with("user-startup.dsp") && d[1].fix.contains("-startup"));
        assert!(d.iter().all(|d| !d.is_error()));
    }
}
