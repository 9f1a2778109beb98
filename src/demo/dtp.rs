//! The demo's second half: the ftpsync mirror becomes a DTP host (`-gendsync`,
//! `-service`), and a repository of the dsync layer pulls it over DTP twice
//! (the second time the host answers "not modified"), then shows the status
//! files a web page reads.
//!
//! ```text
//! DIR/dtp-host/     the host's dsync home: xync.conf (webroot=DIR; run as root,
//!                   dtp-user=nobody: the service drops root after binding), dtp/list.conf
//!                   (`mirror`), repos/mirror.conf (dsync=true), logs/dtp-access.log
//! DIR/dxync/        the downstream's dsync home: repos/debian-dtp.conf, logs/
//! DIR/mirror-dtp/   the DTP mirror
//! DIR/status/       dsync-status/debian-dtp and dsync-jobs.json
//! ```

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Layout;
use crate::process::{self, GroupChild};

const REPO: &str = "debian-dtp";

/// Run the DTP half; the exit code of the last sync.
pub fn run(layout: &Layout) -> anyhow::Result<u8> {
    let host = layout.root.join("dtp-host");
    let home = layout.root.join("dxync");
    let save = layout.root.join("mirror-dtp");
    let status = layout.root.join("status");
    let port = super::rsyncd::free_port()?;
    write_host(layout, &host, port)?;
    write_downstream(&home, &save, &status, port)?;

    println!("\n== DTP: the mirror above becomes a DTP host on 127.0.0.1:{port}");
    let code = dsync(layout, &host, &["-gendsync"])?;
    if code != 0 {
        bail!("dsync -gendsync failed with exit code {code}");
    }
    let _service = Service::start(layout, &host, port)?;
    println!(
        "   manifest: {}",
        layout.mirror.join("data.dsync").display()
    );

    println!("\n== DTP sync 1: {REPO} pulls the whole tree over many connections");
    let mut code = dsync(layout, &home, &["-sync", REPO])?;
    show_log(&home, "DTP: ");
    if code == 0 {
        println!("\n== DTP sync 2: nothing changed upstream, one request answers it");
        code = dsync(layout, &home, &["-sync", REPO])?;
        show_log(&home, "manifest not modified");
    }
    show_status(&status);
    println!(
        "   the host's access log, one line per request with the client address: {}",
        host.join("logs/dtp-access.log").display()
    );
    Ok(code)
}

/// The account the demo's service runs as when the demo runs as root (a
/// root service refuses to start without `dtp-user`).
const SERVICE_USER: &str = "nobody";

fn write_host(layout: &Layout, host: &Path, port: u16) -> anyhow::Result<()> {
    let webroot = &layout.root;
    // As root, the service binds as root and then serves as SERVICE_USER, who
    // must be able to enter DIR (made 0700 when under the temp dir).
    let dtp_user = if crate::dtp::server::privileges::is_root() {
        fs::set_permissions(webroot, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("let {SERVICE_USER} into {}", webroot.display()))?;
        format!("dtp-user={SERVICE_USER}\n")
    } else {
        String::new()
    };
    write(
        &host.join("xync.conf"),
        &format!(
            "webroot={}\ndtp-listen=127.0.0.1:{port}\n{dtp_user}",
            webroot.display()
        ),
    )?;
    write(&host.join("dtp/list.conf"), "mirror\n")?;
    write(
        &host.join("repos/mirror.conf"),
        &format!("save={}\ndsync=true\n", layout.mirror.display()),
    )
}

fn write_downstream(home: &Path, save: &Path, status: &Path, port: u16) -> anyhow::Result<()> {
    fs::create_dir_all(save).with_context(|| format!("create {}", save.display()))?;
    write(
        &home.join("xync.conf"),
        &format!("status={}\n", status.display()),
    )?;
    write(
        &home.join(format!("repos/{REPO}.conf")),
        &format!(
            "save={}\ndsync-url=dtp://127.0.0.1:{port}/mirror\n",
            save.display()
        ),
    )
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// `dsync -home HOME ARGS…` as a child in cron's environment; its exit code.
fn dsync(layout: &Layout, home: &Path, args: &[&str]) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("cannot find the dsync binary")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("-home").arg(home).args(args).stdin(Stdio::null());
    super::cron_environment(&mut cmd, layout);
    let status = process::run(&mut cmd).with_context(|| format!("run {}", exe.display()))?;
    Ok(u8::try_from(process::shell_status(status)).unwrap_or(crate::exit::FAILURE))
}

/// The DTP service, stopped (as a process group) when dropped.
struct Service {
    _child: GroupChild,
}

impl Service {
    fn start(layout: &Layout, host: &Path, port: u16) -> anyhow::Result<Service> {
        let exe = std::env::current_exe().context("cannot find the dsync binary")?;
        let log = fs::File::create(host.join("service.out"))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("-home")
            .arg(host)
            .args(["-service", "-foreground"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        super::cron_environment(&mut cmd, layout);
        let mut child = process::spawn(&mut cmd).context("start the DTP service")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.wait_timeout(Duration::from_millis(50))?.is_some() || Instant::now() > deadline
            {
                let said = fs::read_to_string(host.join("service.out")).unwrap_or_default();
                bail!("the DTP service did not start:\n{said}");
            }
        }
        Ok(Service { _child: child })
    }
}

/// The lines of the repository's log that say what the last sync did.
fn show_log(home: &Path, needle: &str) {
    let log = fs::read_to_string(home.join(format!("logs/{REPO}.log"))).unwrap_or_default();
    if let Some(line) = log.lines().rev().find(|l| l.contains(needle)) {
        let text = line.split_once("]: ").map_or(line, |(_, t)| t);
        println!("   {text}");
    }
}

fn show_status(status: &Path) {
    let digit = status.join("dsync-status").join(REPO);
    let json: PathBuf = status.join("dsync-jobs.json");
    println!("\n== status, as a mirror web page reads it");
    match fs::read_to_string(&digit) {
        Ok(d) => println!(
            "   {}: {d}   (2 syncing, 1 success, 0 failure)",
            digit.display()
        ),
        Err(_) => println!("   {}: missing", digit.display()),
    }
    println!("   {} (tunasync's /jobs fields):", json.display());
    for line in fs::read_to_string(&json).unwrap_or_default().lines() {
        println!("     {line}");
    }
}
