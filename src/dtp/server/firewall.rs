//! `dtp/firewall.conf`: `allow=` lines of addresses and networks. No `allow=`
//! at all means open to everyone; a malformed entry is an error (the service
//! must not start with a list narrower or wider than the operator wrote).

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::diag::Diagnostic;
use crate::keyvalue::{Parsed, parse_line, raw_lines};

/// Who may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewall {
    /// Empty: everyone.
    allow: Vec<IpNet>,
}

impl Firewall {
    /// Is a client at `ip` let in? IPv4 clients of a dual-stack socket
    /// (`::ffff:a.b.c.d`) are matched as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }

    pub fn is_open(&self) -> bool {
        self.allow.is_empty()
    }

    pub fn entries(&self) -> usize {
        self.allow.len()
    }
}

/// Parse `text` (the file `path`).
pub fn parse(path: &Path, text: &str) -> (Firewall, Vec<Diagnostic>) {
    let mut allow = Vec::new();
    let mut diags = Vec::new();
    for line in raw_lines(text) {
        let n = line.number;
        let value = match parse_line(line.text) {
            Parsed::Blank => continue,
            Parsed::Pair {
                key: "allow",
                value,
            } => value,
            Parsed::Pair { key, .. } => {
                diags.push(Diagnostic::error(
                    path,
                    n,
                    format!("unknown key `{key}`: firewall.conf knows only allow="),
                    "write allow=ADDRESS, NETWORK/BITS, ... (everything else is refused)",
                ));
                continue;
            }
            Parsed::Malformed => {
                diags.push(Diagnostic::error(
                    path,
                    n,
                    format!("`{}` is not an allow= line", shown(line.text)),
                    "write allow=192.0.2.0/24, 198.51.100.7, or put # in front of the line",
                ));
                continue;
            }
        };
        match entries(&value) {
            Ok(nets) if nets.is_empty() => diags.push(Diagnostic::error(
                path,
                n,
                "allow= names no address",
                "write the addresses allowed after allow=, or delete the line (no allow= line at all means open to everyone)",
            )),
            Ok(nets) => allow.extend(nets),
            Err(bad) => diags.push(Diagnostic::error(
                path,
                n,
                format!("{bad} is not an IP address or network"),
                "write addresses like 192.0.2.7 or 2001:db8::1 and networks like 192.0.2.0/24, separated by commas",
            )),
        }
    }
    (Firewall { allow }, diags)
}

/// The comma-separated entries of one `allow=` value; `Err` lists the bad ones.
fn entries(value: &str) -> Result<Vec<IpNet>, String> {
    let mut nets = Vec::new();
    let mut bad = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match entry(item) {
            Some(net) => nets.push(net),
            None => bad.push(format!("`{}`", shown(item))),
        }
    }
    if bad.is_empty() {
        Ok(nets)
    } else {
        Err(bad.join(", "))
    }
}

fn entry(item: &str) -> Option<IpNet> {
    let net = match item.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(item.parse::<IpAddr>().ok()?),
    };
    Some(canonical(net.trunc()))
}

/// `::ffff:a.b.c.d/N` (N ≥ 96) as the IPv4 network it means, since clients are
/// matched as IPv4.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

fn shown(text: &str) -> String {
    text.trim()
        .chars()
        .take(60)
        .collect::<String>()
        .escape_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> (Firewall, Vec<Diagnostic>) {
        parse(Path::new("firewall.conf"), text)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_is_open() {
        let (fw, d) = p("# nothing\n\n");
        assert!(d.is_empty());
        assert!(fw.is_open() && fw.allows(ip("203.0.113.9")));
    }

    #[test]
    fn lines_add_up_with_spaces() {
        let (fw, d) = p(
            "allow = 127.0.0.1 , 10.0.0.0/8,\nallow=2001:db8::/32\n allow=::ffff:192.0.2.0/120\n",
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(fw.entries(), 4);
        for good in [
            "127.0.0.1",
            "10.9.8.7",
            "2001:db8::5",
            "::ffff:127.0.0.1",
            "192.0.2.77",
        ] {
            assert!(fw.allows(ip(good)), "{good}");
        }
        for bad in ["127.0.0.2", "11.0.0.1", "2001:db9::1", "::1"] {
            assert!(!fw.allows(ip(bad)), "{bad}");
        }
    }

    #[test]
    fn host_bits_are_dropped() {
        let (fw, d) = p("allow=10.1.2.3/8\n");
        assert!(d.is_empty());
        assert!(fw.allows(ip("10.200.0.1")));
    }

    #[test]
    fn malformed_entries_are_errors_with_line() {
        let (_, d) = p(
            "allow=127.0.0.1\nallow=10.0.0.0/33, nope\ndeny=1.2.3.4\njust words\nallow=\nallow= , \n",
        );
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6], "{d:#?}");
        assert!(d.iter().all(|d| d.is_error()));
        assert!(d[0].message.contains("`10.0.0.0/33`, `nope`"), "{}", d[0]);
    }
}
