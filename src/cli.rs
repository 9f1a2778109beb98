//! Which personality runs: `ftpsync` when invoked under that name (or as
//! `dsync ftpsync …`), otherwise the `dsync` command line.

use std::path::Path;

use crate::exit;

const USAGE: &str = "\
usage: dsync ftpsync [-T TRIGGER] [sync:all|sync:stage1|sync:stage2|sync:archive:NAME|sync:callback|sync:mhop]...
       dsync demo [DIR]
       dsync rsync-ssl-tunnel [-C CAPATH] [-m METHOD] [-p PORT] HOST ...
       dsync --version | -h

Invoked through a symlink named ftpsync (or ftpsync-NAME), dsync behaves as
Debian's ftpsync and reads the same ftpsync.conf. `dsync demo` mirrors a small
generated archive from a local rsync daemon, to show a whole sync. As
rsync-ssl-tunnel it is the TLS helper RSYNC_TRANSPORT=ssl runs. See dsync(1).";

/// Entry point: returns the process exit status.
pub fn main() -> u8 {
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let argv0 = args.next().unwrap_or_default();
    let args: Vec<String> = args.collect();
    let invoked_as = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The tunnel hands fd 3 to stunnel and execs it: it must run before the
    // signal watcher opens descriptors of its own (and needs none).
    if invoked_as == "rsync-ssl-tunnel" {
        return crate::tunnel::run(&args);
    }
    if args.first().map(String::as_str) == Some("rsync-ssl-tunnel") {
        return crate::tunnel::run(&args[1..]);
    }
    if let Err(e) = crate::signals::install() {
        eprintln!("dsync: cannot install signal handlers: {e}");
        return exit::FAILURE;
    }
    if invoked_as.starts_with("ftpsync") && invoked_as != "ftpsync-cron" {
        return crate::ftpsync::run(&invoked_as, &args);
    }
    match args.first().map(String::as_str) {
        Some("ftpsync") => crate::ftpsync::run("ftpsync", &args[1..]),
        Some("demo") => crate::demo::run(&args[1..]),
        Some("--version" | "-V" | "-version") => {
            println!("dsync {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        Some("-h" | "--help" | "-help") => {
            println!("{USAGE}");
            exit::OK
        }
        _ => {
            eprintln!("{USAGE}");
            exit::USAGE
        }
    }
}
