//! `dsync demo [DIR]`: a whole mirror setup on this machine, synced twice.
//!
//! What a newcomer runs first. Every part is real: an upstream Debian-style archive written
//! by [`archive`], served by a real `rsync --daemon` on 127.0.0.1, and mirrored by this same
//! binary in ftpsync mode, started the way cron starts it (a clean environment, a `HOME`
//! with `.config/ftpsync/ftpsync.conf`). Then the upstream moves to its next revision and
//! the mirror follows it through ftpsync's two stages. Then (`dtp`) that mirror is served
//! by the DTP service and pulled by a repository of the dsync layer, whose status files are
//! shown. Everything stays in DIR afterwards:
//!
//! ```text
//! DIR/.dsync-demo                        marker: made by dsync demo (a rerun may reuse DIR)
//! DIR/upstream/                          the archive, served as rsync module `debian`
//! DIR/rsyncd/                            rsyncd.conf, rsyncd.log, output.log, rsyncd.pid
//!                                        (the daemon's pid; stale once the demo is over)
//! DIR/home/.config/ftpsync/ftpsync.conf  the mirror's config
//! DIR/mirror/                            the mirror
//! DIR/log/                               ftpsync's logs
//! DIR/dtp-host/, DIR/dxync/, DIR/mirror-dtp/, DIR/status/   the DTP half (see `dtp`)
//! ```

pub mod archive;
mod conf;
mod dtp;
mod report;
mod rsyncd;
mod workdir;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::{exit, process, signals};
use archive::{ArchiveInfo, ArchiveSpec};

const USAGE: &str = "\
usage: dsync demo [DIR]

Writes a small Debian-style archive, serves it with a real rsync daemon on
127.0.0.1, and mirrors it twice with `dsync ftpsync`, as cron would. Then that
mirror becomes a DTP host and a dsync repository pulls it over DTP (twice: the
second time nothing changed), and the status files are shown. Without DIR, a
new directory under the system temp dir is used (and kept).";

/// Where a demo keeps what. All paths are absolute.
struct Layout {
    root: PathBuf,
    upstream: PathBuf,
    rsyncd: PathBuf,
    home: PathBuf,
    config: PathBuf,
    mirror: PathBuf,
    log: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Layout {
        let home = root.join("home");
        Layout {
            root: root.to_path_buf(),
            upstream: root.join("upstream"),
            rsyncd: root.join("rsyncd"),
            config: home.join(".config/ftpsync/ftpsync.conf"),
            home,
            mirror: root.join("mirror"),
            log: root.join("log"),
        }
    }

    /// The mirror's own trace file, which ftpsync writes after a complete sync.
    fn trace(&self) -> PathBuf {
        self.mirror.join("project/trace").join(conf::MIRRORNAME)
    }
}

/// Run `dsync demo ARGS`; returns the exit status.
pub fn run(args: &[String]) -> u8 {
    let dir = match args {
        [] => None,
        [help] if matches!(help.as_str(), "-h" | "--help" | "-help") => {
            println!("{USAGE}");
            return exit::OK;
        }
        [dir] if !dir.starts_with('-') => Some(Path::new(dir)),
        _ => {
            eprintln!("{USAGE}");
            return exit::USAGE;
        }
    };
    if !rsyncd::on_path("rsync") {
        eprintln!("dsync demo: rsync is not installed; install it with: apt-get install rsync");
        return exit::FAILURE;
    }
    match demo(dir) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dsync demo: {e:#}");
            exit::FAILURE
        }
    }
}

fn demo(dir: Option<&Path>) -> anyhow::Result<u8> {
    let layout = Layout::new(&workdir::prepare(dir)?);
    println!("dsync demo in {}", layout.root.display());

    let spec = ArchiveSpec::default();
    let rev1 = archive::write_revision(&layout.upstream, &spec, 1)?;
    let daemon = rsyncd::Daemon::start(&layout.rsyncd, "debian", &layout.upstream)?;
    report::upstream(&layout, &rev1, &daemon);
    write_config(&layout, daemon.port())?;

    let mut code = sync(&layout, 1, &rev1)?;
    if code == exit::OK && signals::received().is_none() {
        let rev2 = archive::write_revision(&layout.upstream, &spec, 2)?;
        report::upstream_moved(&rev1, &rev2);
        code = sync(&layout, 2, &rev2)?;
    }
    if let Some(signal) = signals::received() {
        return Ok(exit::for_signal(signal));
    }
    report::summary(&layout, code);
    daemon.stop().context("stop the rsync daemon")?;
    if code == exit::OK && signals::received().is_none() {
        code = dtp::run(&layout)?;
    }
    if let Some(signal) = signals::received() {
        return Ok(exit::for_signal(signal));
    }
    Ok(code)
}

fn write_config(layout: &Layout, port: u16) -> anyhow::Result<()> {
    let dir = layout.config.parent().unwrap_or(&layout.home);
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fs::write(&layout.config, conf::render(layout, port))
        .with_context(|| format!("write {}", layout.config.display()))?;
    println!("\n== mirror config: {}", layout.config.display());
    Ok(())
}

/// Run `dsync ftpsync` as a child, the way an operator's cron job would, and return its
/// exit code.
fn sync(layout: &Layout, n: u32, upstream: &ArchiveInfo) -> anyhow::Result<u8> {
    println!(
        "\n== sync {n}: upstream at revision {} (serial {})",
        upstream.rev, upstream.serial
    );
    let exe = std::env::current_exe().context("cannot find the dsync binary")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("ftpsync").stdin(Stdio::null());
    cron_environment(&mut cmd, layout);
    let status = process::run(&mut cmd).with_context(|| format!("run {}", exe.display()))?;
    let code = u8::try_from(process::shell_status(status)).unwrap_or(exit::FAILURE);
    println!("== sync {n} finished with exit code {code}");
    report::after_sync(layout);
    Ok(code)
}

/// cron's environment, not ours: nothing the caller happens to have exported (a `BASEDIR`
/// that moves the config search, an `ARCH_EXCLUDE` the config does not set) may change
/// what the demo does.
fn cron_environment(cmd: &mut Command, layout: &Layout) {
    let logname = std::env::var("LOGNAME")
        .ok()
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "demo".into());
    cmd.env_clear()
        .env("HOME", &layout.home)
        .env("LOGNAME", logname)
        .env("SHELL", "/bin/sh")
        // The demo must never mail anyone.
        .env("DSYNC_SENDMAIL", "/bin/true");
    // Keep PATH: rsync was found through it.
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
}
