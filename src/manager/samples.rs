//! The sample files shipped in `etc/`, embedded so `dsync -example all` (or
//! `-example FILE`) prints them on a machine where only the binary was installed.

/// Embed `etc/PATH` as `(PATH, text)`.
macro_rules! sample {
    ($path:literal) => {
        ($path, include_str!(concat!("../../etc/", $path)))
    };
}

/// `(path under etc/, text)` of every sample, in the order `-example` prints them.
pub const FILES: &[(&str, &str)] = &[
    sample!("xync.conf"),
    sample!("upstreams.conf"),
    sample!("repos/kali.conf"),
    sample!("repos/explicit-src.conf"),
    sample!("repos/intranet.conf"),
    sample!("repos/debian-ftpsync.conf"),
    sample!("repos/dtp-client.conf"),
    sample!("repos/dtp-host.conf"),
    sample!("dtp/list.conf"),
    sample!("dtp/firewall.conf"),
    sample!("dtp/motd.conf"),
    sample!("systemd/dsync.service"),
    sample!("systemd/dsync.timer"),
    sample!("systemd/dsync-dtp.service"),
    sample!("cron.d-dsync"),
];

/// The sample at `etc/PATH`, named by its path (`repos/kali.conf`) or, where
/// that is unique, its file name (`xync.conf`, `kali.conf`).
pub fn find(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix("etc/").unwrap_or(name);
    let by_path = FILES.iter().find(|(path, _)| *path == name);
    let mut by_file = FILES
        .iter()
        .filter(|(path, _)| path.rsplit('/').next() == Some(name));
    let unique = match (by_file.next(), by_file.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    };
    by_path.or(unique).map(|(_, text)| *text)
}

/// The samples' paths under `etc/`.
pub fn names() -> Vec<&'static str> {
    FILES.iter().map(|(path, _)| *path).collect()
}

/// Every sample, each under a `#### etc/PATH` header line.
pub fn all() -> String {
    let mut out = String::new();
    for (path, text) in FILES {
        out.push_str(&format!("#### etc/{path}\n{text}"));
        if !text.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out
}
