//! A dsync home in a temporary folder, upstream trees served by a real rsync
//! daemon on 127.0.0.1, and `dsync` run on it as an operator's cron would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::rsyncd::RsyncDaemon;

/// A dsync home in a temp dir, with upstream trees served by one daemon.
pub struct Site {
    dir: tempfile::TempDir,
    daemon: Option<RsyncDaemon>,
}

impl Site {
    pub fn new() -> Site {
        let site = Site {
            dir: tempfile::tempdir().unwrap(),
            daemon: None,
        };
        std::fs::create_dir_all(site.home().join("repos")).unwrap();
        std::fs::create_dir_all(site.root().join("up")).unwrap();
        site
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.root().join("dxync")
    }

    /// An upstream module `name` with a few files (one of `big` bytes).
    pub fn upstream(&self, name: &str, big: usize) -> PathBuf {
        let dir = self.root().join("up").join(name);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("README"), format!("module {name}\n")).unwrap();
        std::fs::write(dir.join("sub/file"), "data\n").unwrap();
        let data: Vec<u8> = (0..big as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        std::fs::write(dir.join("big.bin"), data).unwrap();
        dir
    }

    /// Serve every folder under `up/` as a module on 127.0.0.1.
    pub fn serve(&mut self) -> u16 {
        let mut modules: Vec<(String, PathBuf)> = std::fs::read_dir(self.root().join("up"))
            .unwrap()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        modules.sort();
        let refs: Vec<(&str, &Path)> = modules
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_path()))
            .collect();
        let daemon = RsyncDaemon::start("127.0.0.1", &refs);
        let port = daemon.port();
        self.daemon = Some(daemon);
        port
    }

    pub fn xync(&self, text: &str) {
        std::fs::write(self.home().join("xync.conf"), text).unwrap();
    }

    pub fn repo(&self, name: &str, extra: &str) -> PathBuf {
        let save = self.root().join("mirror").join(name);
        // An operator creates (or mounts) the mirror folder first.
        std::fs::create_dir_all(&save).unwrap();
        let text = format!("repo={name}\nsave={}\n{extra}\n", save.display());
        std::fs::write(self.home().join("repos").join(format!("{name}.conf")), text).unwrap();
        save
    }

    pub fn src(&self, module: &str) -> String {
        let port = self.daemon.as_ref().expect("serve() first").port();
        format!("src=rsync://127.0.0.1:{port}/{module}/")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
        cmd.arg("-home")
            .arg(self.home())
            .args(args)
            .env("DSYNC_RETRY_WAIT", "1")
            .env("DSYNC_SENDMAIL", "/bin/true")
            // `-test` also reads this machine's ftpsync setups: not in tests.
            .env("DSYNC_ETC_FTPSYNC", self.root().join("etc-ftpsync"))
            .env("DSYNC_CRONTAB", self.root().join("crontab"))
            .env_remove("DSYNC_RSYNC");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// An rsync wrapper for `DSYNC_RSYNC` that throttles transfers.
    pub fn slow_rsync(&self, kib_per_sec: u32) -> PathBuf {
        let path = self.root().join("slow-rsync");
        script(
            &path,
            &format!("#!/bin/sh\nexec rsync --bwlimit={kib_per_sec} \"$@\"\n"),
        );
        path
    }

    pub fn daemon_log(&self) -> String {
        self.daemon.as_ref().unwrap().log()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.home().join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }
}

pub fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[track_caller]
pub fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No process (rsync, or its receiver) still has `save/` on its command line.
#[track_caller]
pub fn assert_no_rsync_into(save: &Path) {
    let left = std::process::Command::new("pgrep")
        .args(["-a", "-f", &format!("{}/", save.display())])
        .output()
        .unwrap();
    assert!(
        !left.status.success(),
        "a process writing into {} survived: {}",
        save.display(),
        String::from_utf8_lossy(&left.stdout)
    );
}
