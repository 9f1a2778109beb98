//! The sample configurations shipped in `etc/`, embedded so `dsync -example`
//! prints them on a machine where only the binary was installed.

/// `(path under etc/, text)` of every sample, in the order `-example` prints them.
pub const FILES: &[(&str, &str)] = &[
    ("xync.conf", include_str!("../../etc/xync.conf")),
    ("upstreams.conf", include_str!("../../etc/upstreams.conf")),
    ("repos/kali.conf", include_str!("../../etc/repos/kali.conf")),
    (
        "repos/explicit-src.conf",
        include_str!("../../etc/repos/explicit-src.conf"),
    ),
    (
        "repos/intranet.conf",
        include_str!("../../etc/repos/intranet.conf"),
    ),
    (
        "repos/debian-ftpsync.conf",
        include_str!("../../etc/repos/debian-ftpsync.conf"),
    ),
];

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
