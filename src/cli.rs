//! Which personality runs: `ftpsync` when invoked under that name (or as
//! `dsync ftpsync …`), otherwise the `dsync` command line.

use std::path::Path;

use crate::exit;

const USAGE: &str = "\
usage: dsync [-home DIR] [-sync NAME] [-force] [-nolog]
       dsync [-home DIR] -test [-offline] | -emoff | -cleanlog | -example [FILE|all]
       dsync [-home DIR] -setup [LINK | -repo NAME -save DIR [-src URL] [-timeset HH,HH]] [-force]
       dsync [-home DIR] -gendsync | -service [-foreground] | -stop-service | -reload | -startup
       dsync ftpsync [-T TRIGGER] [sync:all|sync:stage1|sync:stage2|sync:archive:NAME|sync:callback|sync:mhop]...
       dsync ftpsync -test [-offline] [sync:archive:NAME]
       dsync ftpsync-cron [ARCHIVE]
       dsync runmirrors [NAME | -a NAME] [-k all|stage2|mhop] [-f]
       dsync demo [DIR]
       dsync rsync-ssl-tunnel [-C CAPATH] [-m METHOD] [-p PORT] HOST ...
       dsync --version | -h

Without a command, dsync syncs every repository of its home (~/dxync, or
-home DIR, or DSYNC_HOME) that is due this hour, syncps at a time:

  -sync NAME   sync this repository now, whatever its timeset
  -force       sync every repository now, creating missing save folders
  -nolog       run in the background; output goes to logs/dsync.log
  -test        check every configuration file, every ftpsync setup of this
               user (what each run would do, and what would stop it) and,
               unless -offline, reach every upstream; creates the home if missing
  -emoff       stop every running sync at once, leaving a marker file
  -cleanlog    delete logs older than 7 days
  -setup       write a repository file (asks on the terminal what the
               options do not give); -setup LINK takes repo=, save=… from
               a KRFOSS setup link's query string
  -example     list the repositories dsync can mirror with two lines (name
               and upstream); -example FILE prints a sample file
               (xync.conf, kali.conf…), -example all every sample
  -gendsync    write data.dsync (the DTP manifest) in every dsync=true repository
  -service     start the DTP service in the background (-foreground: in the
               foreground, for systemd); -stop-service stops it, -reload
               re-reads its list, firewall and motd files
  -startup     install and enable the dsync-dtp systemd service

Invoked through a symlink named ftpsync (or ftpsync-NAME), dsync behaves as
Debian's ftpsync and reads the same ftpsync.conf; as ftpsync-cron it syncs
when the upstream trace's Archive serial changed; as runmirrors it pushes
the downstream mirrors of runmirrors.mirror over ssh. `dsync demo` mirrors a small
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
    // A guard waits for its own signals (src/process/guard.rs).
    if args.first().map(String::as_str) == Some(crate::process::guard::WORD) {
        return crate::process::guard::main(&args[1..]);
    }
    if let Ok(exe) = std::env::current_exe() {
        crate::process::guard::enable(exe);
    }
    if let Err(e) = crate::signals::install() {
        eprintln!("dsync: cannot install signal handlers: {e}");
        return exit::FAILURE;
    }
    if invoked_as.starts_with("runmirrors") {
        return crate::ftpsync::runmirrors::run(&invoked_as, &args);
    }
    if invoked_as == "ftpsync-cron" {
        return crate::ftpsync::cron::run(&args);
    }
    if invoked_as.starts_with("ftpsync") {
        return crate::ftpsync::run(&invoked_as, &args);
    }
    match args.first().map(String::as_str) {
        Some("ftpsync") => crate::ftpsync::run("ftpsync", &args[1..]),
        Some("ftpsync-cron") => crate::ftpsync::cron::run(&args[1..]),
        Some("runmirrors") => crate::ftpsync::runmirrors::run("runmirrors", &args[1..]),
        Some("demo") => crate::demo::run(&args[1..]),
        Some("--version" | "-V" | "-version") => {
            println!("dsync {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        Some("-h" | "--help" | "-help") => {
            println!("{USAGE}");
            exit::OK
        }
        _ => crate::manager::commands::main(&args),
    }
}
