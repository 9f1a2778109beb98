//! `rsync-ssl-tunnel`: rsync's "remote shell" for `RSYNC_TRANSPORT=ssl`.
//!
//! ftpsync runs `rsync -e rsync-ssl-tunnel HOST::MODULE …`; rsync then starts
//! `rsync-ssl-tunnel [-l USER] HOST rsync --server --daemon .` and speaks the daemon
//! protocol over its stdin and stdout. Like Debian's script of the same name we parse
//! `-C CAPATH -m METHOD -p PORT` (and ignore `-l USER` and everything after HOST), fall
//! back to `RSYNC_SSL_CAPATH`, `RSYNC_SSL_METHOD`, `RSYNC_SSL_PORT` and then to
//! `/etc/ssl/certs`, `stunnel`, `1873`, and replace this process with a TLS client whose
//! stdin and stdout are rsync's pipes:
//!
//! - `stunnel`, `stunnel4`: `stunnel -fd 3`, its configuration on fd 3, verifying the
//!   chain against CAPATH and the certificate's name against HOST (`checkHost`);
//! - `stunnel-old`, `stunnel4-old`: the same without `checkHost` (stunnel < 5.15);
//! - `socat`: `socat - openssl-connect:HOST:PORT,capath=CAPATH,keepalive,keepidle=300`.
//!
//! One deliberate difference: the stunnel configuration also sets `TIMEOUTclose = 0`
//! (as rsync's own `rsync-ssl` does). Without it stunnel, once the server has closed the
//! connection, waits up to 60 s for rsync to close its end, while rsync waits for
//! stunnel to exit; every transfer would end with a 60 s stall.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::exit;

/// The port when neither `-p` nor `RSYNC_SSL_PORT` gives one.
pub const DEFAULT_PORT: &str = "1873";
/// The CA directory when neither `-C` nor `RSYNC_SSL_CAPATH` gives one.
pub const DEFAULT_CAPATH: &str = "/etc/ssl/certs";
/// The method when neither `-m` nor `RSYNC_SSL_METHOD` gives one.
pub const DEFAULT_METHOD: &str = "stunnel";

/// The name used in messages (the script used its `$0`).
const NAME: &str = "rsync-ssl-tunnel";

/// The file descriptor on which stunnel reads its configuration (`stunnel -fd 3`).
const CONFIG_FD: i32 = 3;

/// Where and how to connect, after options, environment and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub host: String,
    pub port: String,
    pub capath: String,
    pub method: String,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `-h`: usage on stdout, exit 0.
    Help,
    /// Connect to [`Tunnel::host`].
    Connect(Tunnel),
}

/// A command line we cannot use: reported with the usage, exit 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// An option letter other than `C h l m p`.
    IllegalOption(char),
    /// `-C`, `-l`, `-m` or `-p` as the last word, without its value.
    MissingArgument(char),
    /// No HOST after the options.
    NoHost,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The wording of bash's getopts, which the script relies on.
            UsageError::IllegalOption(c) => write!(f, "{NAME}: illegal option -- {c}"),
            UsageError::MissingArgument(c) => {
                write!(f, "{NAME}: option requires an argument -- {c}")
            }
            UsageError::NoHost => f.write_str("No arguments given."),
        }
    }
}

/// The TLS client to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// stunnel; `check_host` adds `checkHost = HOST`.
    Stunnel {
        check_host: bool,
    },
    Socat,
}

impl Method {
    /// The method named by `RSYNC_SSL_METHOD` / `-m`, if it is one we know.
    pub fn from_name(name: &str) -> Option<Method> {
        match name {
            "stunnel" | "stunnel4" => Some(Method::Stunnel { check_host: true }),
            "stunnel-old" | "stunnel4-old" => Some(Method::Stunnel { check_host: false }),
            "socat" => Some(Method::Socat),
            _ => None,
        }
    }
}

/// The usage text, for `-h` (stdout) and errors (stderr).
pub fn usage() -> String {
    format!(
        "Usage: {NAME} [OPTION]... RSYNC_HOST

  -C  the capath (default: {DEFAULT_CAPATH})
  -m  the method (stunnel|stunnel-old|socat)
  -p  the port (default: {DEFAULT_PORT})
  -h  display this help and exit
"
    )
}

/// Parse the arguments (without argv0) as getopts `C:hl:m:p:` would, then take HOST;
/// `env` looks up `RSYNC_SSL_*` variables.
///
/// Options end at the first word that is not an option (HOST), at `--`, or at `-`.
/// A value may be attached (`-p1873`; so `-lh` is `-l h`, while `-hl` is `-h`). As
/// in the script, the first `-h` or error wins, and an empty value (from an option
/// or the environment) means the default.
pub fn parse(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, UsageError> {
    let mut capath = None;
    let mut method = None;
    let mut port = None;
    let mut user = None; // -l USER: accepted and ignored
    let mut i = 0;
    while let Some(word) = args.get(i) {
        if word == "--" {
            i += 1;
            break;
        }
        let Some(letters) = word.strip_prefix('-').filter(|l| !l.is_empty()) else {
            break;
        };
        i += 1;
        // Every letter but `h` takes a value, so only the first letter is an option
        // letter; the rest of the word, if any, is its value (`-lh` is `-l h`).
        let mut chars = letters.chars();
        let letter = chars.next().unwrap_or_default();
        let slot = match letter {
            'h' => return Ok(Invocation::Help),
            'C' => &mut capath,
            'm' => &mut method,
            'p' => &mut port,
            'l' => &mut user,
            other => return Err(UsageError::IllegalOption(other)),
        };
        let attached = chars.as_str();
        *slot = Some(if attached.is_empty() {
            let value = args.get(i).ok_or(UsageError::MissingArgument(letter))?;
            i += 1;
            value.clone()
        } else {
            attached.to_string()
        });
    }
    let host = args.get(i).ok_or(UsageError::NoHost)?.clone();
    let setting = |option: Option<String>, var: &str, default: &str| {
        let value = option.or_else(|| env(var)).unwrap_or_default();
        if value.is_empty() {
            default.to_string()
        } else {
            value
        }
    };
    Ok(Invocation::Connect(Tunnel {
        host,
        port: setting(port, "RSYNC_SSL_PORT", DEFAULT_PORT),
        capath: setting(capath, "RSYNC_SSL_CAPATH", DEFAULT_CAPATH),
        method: setting(method, "RSYNC_SSL_METHOD", DEFAULT_METHOD),
    }))
}

impl Tunnel {
    /// The configuration stunnel reads from fd 3.
    pub fn stunnel_config(&self, check_host: bool) -> String {
        let Tunnel {
            host, port, capath, ..
        } = self;
        let mut config = format!(
            "client = yes\nverify = 2\nCApath = {capath}\n\n\
             syslog = no\ndebug = 4\noutput = /dev/stderr\nTIMEOUTclose = 0\n\n\
             connect = {host}:{port}\n"
        );
        if check_host {
            config.push_str(&format!("checkHost = {host}\n"));
        }
        config
    }

    /// socat's arguments: stdio on one side, a verified TLS connection on the other.
    pub fn socat_args(&self) -> Vec<String> {
        let Tunnel {
            host, port, capath, ..
        } = self;
        vec![
            "-".to_string(),
            format!("openssl-connect:{host}:{port},capath={capath},keepalive,keepidle=300"),
        ]
    }
}

/// Entry point (`rsync-ssl-tunnel ARGS…` or `dsync rsync-ssl-tunnel ARGS…`): on
/// success does not return, since stunnel or socat replaces this process.
///
/// Call it before starting any thread, in particular before
/// [`signals::install`](crate::signals::install): stunnel's configuration takes over
/// fd 3, which would otherwise be the signal watcher's socket; that thread then fails
/// on it and panics onto rsync's stderr.
pub fn run(args: &[String]) -> u8 {
    let env = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let tunnel = match parse(args, env) {
        Ok(Invocation::Help) => {
            print!("{}", usage());
            return exit::OK;
        }
        Ok(Invocation::Connect(tunnel)) => tunnel,
        Err(error) => {
            eprint!("{error}\n{}", usage());
            return exit::USAGE;
        }
    };
    let Some(method) = Method::from_name(&tunnel.method) else {
        eprintln!("Unknown method {}.", tunnel.method);
        return exit::FAILURE;
    };
    let (program, package, error) = match method {
        Method::Stunnel { check_host } => (
            "stunnel",
            "stunnel4",
            exec_stunnel(&tunnel.stunnel_config(check_host)),
        ),
        Method::Socat => (
            "socat",
            "socat",
            Command::new("socat").args(tunnel.socat_args()).exec(),
        ),
    };
    if error.kind() == io::ErrorKind::NotFound {
        eprintln!(
            "{NAME}: cannot run {program}: No such file or directory; \
             install it with: apt-get install {package}"
        );
    } else {
        eprintln!("{NAME}: cannot run {program}: {error}");
    }
    exit::FAILURE
}

/// Replace this process with `stunnel -fd 3`, `config` readable on fd 3. Returns
/// only on failure.
fn exec_stunnel(config: &str) -> io::Error {
    let (reader, mut writer) = match io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return e,
    };
    // Nobody reads before the exec: a configuration larger than the pipe buffer
    // (some 64 KiB; ours is a few hundred bytes) must fail, not block forever.
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } == -1 {
        return io::Error::last_os_error();
    }
    if let Err(e) = writer.write_all(config.as_bytes()) {
        return io::Error::new(e.kind(), format!("writing its configuration: {e}"));
    }
    // stunnel reads up to EOF, so no write end may survive into it.
    drop(writer);
    // Both ends are close-on-exec; make the read end fd 3 without that flag. dup2
    // gives the copy no FD_CLOEXEC, but does nothing if the end already is fd 3.
    let fd = reader.as_raw_fd();
    // SAFETY: plain syscalls on descriptors of this process; fd 3 is overwritten on
    // purpose, as nothing of ours may use it once stunnel replaces us.
    let moved = unsafe {
        if fd == CONFIG_FD {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, CONFIG_FD)
        }
    };
    if moved == -1 {
        return io::Error::last_os_error();
    }
    let error = Command::new("stunnel")
        .arg("-fd")
        .arg(CONFIG_FD.to_string())
        .exec();
    drop(reader);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn connect(words: &[&str], env: impl Fn(&str) -> Option<String>) -> Tunnel {
        match parse(&args(words), env) {
            Ok(Invocation::Connect(t)) => t,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    fn tunnel(host: &str, port: &str, capath: &str, method: &str) -> Tunnel {
        Tunnel {
            host: host.into(),
            port: port.into(),
            capath: capath.into(),
            method: method.into(),
        }
    }

    #[test]
    fn rsync_invocation_with_defaults() {
        let t = connect(
            &[
                "-l",
                "ftp",
                "up.example.org",
                "rsync",
                "--server",
                "--daemon",
                ".",
            ],
            no_env,
        );
        assert_eq!(
            t,
            tunnel("up.example.org", "1873", "/etc/ssl/certs", "stunnel")
        );
        let t = connect(
            &["up.example.org", "rsync", "--server", "--daemon", "."],
            no_env,
        );
        assert_eq!(
            t,
            tunnel("up.example.org", "1873", "/etc/ssl/certs", "stunnel")
        );
    }

    #[test]
    fn environment_then_options() {
        let env = |name: &str| match name {
            "RSYNC_SSL_PORT" => Some("4443".to_string()),
            "RSYNC_SSL_CAPATH" => Some("/srv/ca".to_string()),
            "RSYNC_SSL_METHOD" => Some("socat".to_string()),
            _ => None,
        };
        assert_eq!(
            connect(&["h"], env),
            tunnel("h", "4443", "/srv/ca", "socat")
        );
        let t = connect(&["-p", "99", "-C", "/c", "-m", "stunnel-old", "h"], env);
        assert_eq!(t, tunnel("h", "99", "/c", "stunnel-old"));
        // Attached values and grouped letters, as getopts allows.
        let t = connect(&["-p99", "-lroot", "-C/c", "-msocat", "h"], no_env);
        assert_eq!(t, tunnel("h", "99", "/c", "socat"));
        let t = connect(&["-lm", "-p", "7", "h"], no_env);
        assert_eq!(
            t,
            tunnel("h", "7", "/etc/ssl/certs", "stunnel"),
            "-lm is -l m"
        );
        // The last of repeated options wins.
        assert_eq!(connect(&["-p", "1", "-p", "2", "h"], no_env).port, "2");
    }

    #[test]
    fn empty_values_mean_the_default() {
        let env = |name: &str| (name == "RSYNC_SSL_PORT").then(String::new);
        assert_eq!(connect(&["h"], env).port, "1873");
        let env = |_: &str| Some("from-env".to_string());
        // An empty -C replaces the variable, and then the default applies: ${VAR:-default}.
        assert_eq!(connect(&["-C", "", "h"], env).capath, "/etc/ssl/certs");
        assert_eq!(connect(&["h"], env).capath, "from-env");
    }

    #[test]
    fn options_end_at_host_dash_dash_or_dash() {
        let t = connect(&["h", "-p", "5"], no_env);
        assert_eq!((t.host.as_str(), t.port.as_str()), ("h", "1873"));
        assert_eq!(connect(&["--", "-p"], no_env).host, "-p");
        assert_eq!(connect(&["-", "x"], no_env).host, "-");
        assert_eq!(connect(&["-p", "-h", "h"], no_env).port, "-h");
    }

    #[test]
    fn help_and_errors_in_order() {
        let p = |words: &[&str]| parse(&args(words), no_env);
        assert_eq!(p(&["-h"]), Ok(Invocation::Help));
        assert_eq!(p(&["-p", "5", "-h", "-x"]), Ok(Invocation::Help));
        assert_eq!(p(&["-lh"]), Err(UsageError::NoHost), "-lh is -l h");
        assert_eq!(p(&["-x", "-h"]), Err(UsageError::IllegalOption('x')));
        assert_eq!(p(&["-hx"]), Ok(Invocation::Help));
        assert_eq!(p(&["-p"]), Err(UsageError::MissingArgument('p')));
        assert_eq!(p(&[]), Err(UsageError::NoHost));
        assert_eq!(p(&["-p", "5"]), Err(UsageError::NoHost));
        assert_eq!(p(&["--"]), Err(UsageError::NoHost));
        assert_eq!(
            UsageError::IllegalOption('x').to_string(),
            "rsync-ssl-tunnel: illegal option -- x"
        );
        assert_eq!(
            UsageError::MissingArgument('p').to_string(),
            "rsync-ssl-tunnel: option requires an argument -- p"
        );
        assert_eq!(UsageError::NoHost.to_string(), "No arguments given.");
    }

    #[test]
    fn methods() {
        assert_eq!(
            Method::from_name("stunnel"),
            Some(Method::Stunnel { check_host: true })
        );
        assert_eq!(
            Method::from_name("stunnel4"),
            Some(Method::Stunnel { check_host: true })
        );
        assert_eq!(
            Method::from_name("stunnel-old"),
            Some(Method::Stunnel { check_host: false })
        );
        assert_eq!(
            Method::from_name("stunnel4-old"),
            Some(Method::Stunnel { check_host: false })
        );
        assert_eq!(Method::from_name("socat"), Some(Method::Socat));
        assert_eq!(Method::from_name("Socat"), None);
        assert_eq!(Method::from_name(""), None);
    }

    #[test]
    fn stunnel_config_text() {
        let t = tunnel("mirror.example.org", "1873", "/etc/ssl/certs", "stunnel");
        assert_eq!(
            t.stunnel_config(true),
            "client = yes\n\
             verify = 2\n\
             CApath = /etc/ssl/certs\n\
             \n\
             syslog = no\n\
             debug = 4\n\
             output = /dev/stderr\n\
             TIMEOUTclose = 0\n\
             \n\
             connect = mirror.example.org:1873\n\
             checkHost = mirror.example.org\n"
        );
        let old = t.stunnel_config(false);
        assert!(
            old.ends_with("\nconnect = mirror.example.org:1873\n"),
            "{old}"
        );
        assert!(!old.contains("checkHost"));
    }

    #[test]
    fn socat_arguments() {
        let t = tunnel("m.example.org", "443", "/srv/ca", "socat");
        assert_eq!(
            t.socat_args(),
            [
                "-",
                "openssl-connect:m.example.org:443,capath=/srv/ca,keepalive,keepidle=300"
            ]
        );
    }

    #[test]
    fn usage_text() {
        let text = usage();
        assert!(text.starts_with("Usage: rsync-ssl-tunnel [OPTION]... RSYNC_HOST\n\n"));
        assert!(text.contains("  -C  the capath (default: /etc/ssl/certs)\n"));
        assert!(text.contains("  -m  the method (stunnel|stunnel-old|socat)\n"));
        assert!(text.contains("  -p  the port (default: 1873)\n"));
        assert!(text.ends_with("  -h  display this help and exit\n"));
    }
}
