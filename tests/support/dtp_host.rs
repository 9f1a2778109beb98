//! A DTP host for tests: a dsync home whose service (`dsync -home H -service
//! -foreground`) serves repositories from its webroot on 127.0.0.1 and a free
//! port, with a bandwidth limit that can be changed while it runs (the
//! service rereads `xync.conf` on SIGHUP).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running DTP host; the service is stopped on drop.
pub struct DtpHost {
    dir: tempfile::TempDir,
    port: u16,
    bwlimit_kib: u64,
    service: Option<Child>,
}

impl DtpHost {
    /// A host serving `repos` (folders of its webroot, created empty), each
    /// client address limited to `bwlimit_kib` KiB/s (0: no limit).
    pub fn start(repos: &[&str], bwlimit_kib: u64) -> DtpHost {
        let dir = tempfile::Builder::new()
            .prefix("dsync-dtp-host-")
            .tempdir()
            .unwrap();
        if Self::as_root() {
            // The service then runs as `dtp-user=nobody`: let it in (0700 as made).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut host = DtpHost {
            dir,
            port: 0,
            bwlimit_kib,
            service: None,
        };
        std::fs::create_dir_all(host.home().join("dtp")).unwrap();
        std::fs::create_dir_all(host.home().join("repos")).unwrap();
        for repo in repos {
            std::fs::create_dir_all(host.root(repo)).unwrap();
        }
        std::fs::write(host.home().join("dtp/list.conf"), repos.join("\n") + "\n").unwrap();
        // The free port may be taken before the service binds it: try again.
        for _ in 0..3 {
            host.port = super::free_port();
            host.write_config();
            let log = std::fs::File::create(host.output_path()).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_dsync"))
                .arg("-home")
                .arg(host.home())
                .args(["-service", "-foreground"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("dsync runs");
            host.service = Some(child);
            if host.wait_ready() {
                return host;
            }
            host.stop();
        }
        panic!("the DTP service never listened:\n{}", host.output());
    }

    fn as_root() -> bool {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    fn write_config(&self) {
        std::fs::write(
            self.home().join("xync.conf"),
            format!(
                "webroot={}\ndtp-listen=127.0.0.1:{}\ndtp-bwlimit={}\n{}",
                self.webroot().display(),
                self.port,
                self.bwlimit_kib,
                if Self::as_root() {
                    "dtp-user=nobody\n"
                } else {
                    ""
                }
            ),
        )
        .unwrap();
    }

    fn wait_ready(&mut self) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if let Some(child) = self.service.as_mut()
                && child.try_wait().unwrap().is_some()
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.service.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Change the per-address limit of the running service (KiB/s, 0: none)
    /// and wait until it says it reloaded.
    pub fn set_bwlimit(&mut self, kib: u64) {
        if kib == self.bwlimit_kib {
            return;
        }
        self.bwlimit_kib = kib;
        self.write_config();
        let reloads = || self.output().matches("reloaded: ").count();
        let before = reloads();
        let pid = self.service.as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) on the service this host started.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        super::wait_for_what(
            Duration::from_secs(10),
            "the DTP service to reload its configuration",
            || reloads() > before,
        );
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("host")
    }

    pub fn webroot(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// The served tree of `repo`.
    pub fn root(&self, repo: &str) -> PathBuf {
        self.webroot().join(repo)
    }

    /// Where the service listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self, repo: &str) -> String {
        format!("dtp://127.0.0.1:{}/{repo}", self.port)
    }

    /// Write `data.dsync` of `repo` as `dsync -gendsync` does.
    pub fn gendsync(&self, repo: &str) {
        let root = self.root(repo);
        let manifest = dsync::dtp::manifest::generate(&root, repo).unwrap();
        dsync::dtp::manifest::install(&root, &manifest).unwrap();
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("service.out")
    }

    /// What the service wrote on its standard output and error.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.output_path()).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.home().join("logs/dtp-access.log")).unwrap_or_default()
    }
}

impl Drop for DtpHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection from `source` (another loopback address, e.g. 127.0.0.2)
/// to `to`, as a client elsewhere would make it.
pub fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(source.parse().unwrap(), 0))
            .unwrap();
        let stream = socket.connect(to).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// Read `stream` to its end: the bytes, and whether it ended by a reset
/// rather than a clean close.
pub fn read_all(mut stream: TcpStream) -> (Vec<u8>, bool) {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut bytes = Vec::new();
    let reset = match stream.read_to_end(&mut bytes) {
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(e) => panic!("reading the answer: {e}"),
    };
    (bytes, reset)
}
