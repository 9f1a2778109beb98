//! The `dsync` command line of the repository layer: `dsync`, `-sync NAME`,
//! `-nolog`, `-force`, `-emoff`, `-cleanlog`, `-test`, `-setup`, `-example`,
//! all with an optional `-home DIR`. Options take one dash, as the reference
//! tool's do; two dashes are accepted too.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Command;

use super::dtp_host::{service, startup};
use super::home::Home;
use super::scheduler::{self, Selection};
use super::{check, emoff, logs, worker};
use crate::exit;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Run,
    Emoff,
    Cleanlog,
    Test,
    Setup,
    /// `-example`: the repositories of the catalog; `-example FILE`: that
    /// sample file; `-example all`: every sample.
    Example(Option<String>),
    Worker {
        name: String,
        address: Option<String>,
    },
    /// `-gendsync`: write the DTP manifest of every `dsync=true` repository.
    Gendsync,
    /// `-service` (with `-foreground`: in this process, for systemd).
    Service,
    StopService,
    Reload,
    Startup,
}

#[derive(Debug, Default)]
struct Options {
    home: Option<PathBuf>,
    selection: Selection,
    nolog: bool,
    offline: bool,
    setup: SetupAnswers,
    /// `-foreground`, with `-service`.
    foreground: bool,
}

/// `-setup` answers given on the command line (the non-interactive form).
#[derive(Debug, Default, Clone)]
struct SetupAnswers {
    repo: Option<String>,
    save: Option<String>,
    src: Option<String>,
    timeset: Option<String>,
    /// A KRFOSS setup link (`https://…/?repo=kali&save=/mirrors/kali`).
    link: Option<String>,
}

/// Run the `dsync` command line (everything after the program name).
pub fn main(args: &[String]) -> u8 {
    let (action, options) = match parse(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("dsync: {message}; see dsync -h");
            return exit::USAGE;
        }
    };
    let home = Home::locate(options.home.as_deref());
    match action {
        Action::Run if options.nolog => detach(&home, args),
        Action::Run => scheduler::run(&home, &options.selection),
        Action::Emoff => emoff::run(&home),
        Action::Cleanlog => cleanlog(&home),
        Action::Test => test(&home, options.offline),
        Action::Setup => setup(&home, &options.setup, options.selection.force),
        Action::Example(what) => example(&home, what.as_deref()),
        Action::Worker { name, address } => worker::main(&home, &name, address.as_deref()),
        Action::Gendsync => super::dtp_host::gendsync::run(&home),
        Action::Service if options.foreground => service::foreground(&home),
        Action::Service => service::start(&home),
        Action::StopService => service::stop(&home),
        Action::Reload => service::reload(&home),
        Action::Startup => startup::startup(&home),
    }
}

fn parse(args: &[String]) -> Result<(Action, Options), String> {
    let mut action = Action::Run;
    let mut options = Options::default();
    let mut words = args.iter().peekable();
    while let Some(word) = words.next() {
        let flag = word
            .strip_prefix('-')
            .map(|w| w.strip_prefix('-').unwrap_or(w));
        let mut value = |what: &str| {
            words
                .next()
                .cloned()
                .ok_or_else(|| format!("{word} needs {what}"))
        };
        match flag {
            Some("home") => options.home = Some(PathBuf::from(value("a folder")?)),
            Some("sync") => options.selection.only = Some(value("a repository name")?),
            Some("force") => options.selection.force = true,
            Some("nolog") => options.nolog = true,
            Some("offline") => options.offline = true,
            Some("emoff") => action = Action::Emoff,
            Some("cleanlog") => action = Action::Cleanlog,
            Some("test") => action = Action::Test,
            Some("setup") => {
                action = Action::Setup;
                options.setup.link = words.next_if(|w| !w.starts_with('-')).cloned();
            }
            Some("example") => {
                let what = words.next_if(|w| !w.starts_with('-')).cloned();
                action = Action::Example(what);
            }
            Some("gendsync") => action = Action::Gendsync,
            Some("service") => action = Action::Service,
            Some("foreground") => options.foreground = true,
            Some("stop-service") => action = Action::StopService,
            Some("reload") => action = Action::Reload,
            Some("startup") => action = Action::Startup,
            Some("repo") => options.setup.repo = Some(value("a repository name")?),
            Some("save") => options.setup.save = Some(value("a folder")?),
            Some("src") => options.setup.src = Some(value("an rsync:// URL")?),
            Some("timeset") => options.setup.timeset = Some(value("hours like 00,12")?),
            None if word == "__worker" => {
                let name = words
                    .next()
                    .cloned()
                    .ok_or("__worker needs a repository name")?;
                let address = words.next().cloned();
                return Ok((Action::Worker { name, address }, options));
            }
            _ => return Err(format!("unknown option {word}")),
        }
    }
    if options.foreground && action != Action::Service {
        return Err("-foreground goes with -service".into());
    }
    Ok((action, options))
}

/// `-nolog`: the same run, in a new session in the background, output to
/// `logs/dsync.log`, so the terminal may close.
fn detach(home: &Home, args: &[String]) -> u8 {
    let log_path = home.logs_dir().join("dsync.log");
    let started = std::env::current_exe().and_then(|exe| {
        let mut cmd = Command::new(exe);
        cmd.args(
            args.iter()
                .filter(|a| !matches!(a.as_str(), "-nolog" | "--nolog")),
        );
        crate::process::spawn_detached(&mut cmd, &log_path)
    });
    match started {
        Ok(child) => {
            println!(
                "dsync: running in the background as pid {}; log: {}",
                child.id(),
                log_path.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("dsync: cannot start in the background: {e}");
            exit::FAILURE
        }
    }
}

/// `-example`: what KRFOSS's guide uses it for, the repositories dsync can
/// mirror with two lines (the catalog: name and first upstream); with a
/// sample's name, that sample; with `all`, every sample.
fn example(home: &Home, what: Option<&str>) -> u8 {
    use super::samples;
    match what {
        None => {
            let (catalog, diags) = super::upstream::load_catalog(home);
            for d in &diags {
                eprintln!("{d}");
            }
            println!(
                "# Repositories dsync mirrors with two lines, repo=NAME and save=/FOLDER \
                 (NAME and its first upstream; `dsync -example all` prints the sample files):"
            );
            let width = catalog.keys().map(String::len).max().unwrap_or(0);
            for (name, urls) in &catalog {
                let first = urls.first().map_or("", String::as_str);
                println!("{name:width$}  {first}");
            }
            exit::OK
        }
        Some("all") => {
            print!("{}", samples::all());
            exit::OK
        }
        Some(name) => match samples::find(name) {
            Some(text) => {
                print!("{text}");
                exit::OK
            }
            None => {
                eprintln!(
                    "dsync: no sample {name}; the samples are: {}",
                    samples::names().join(", ")
                );
                exit::USAGE
            }
        },
    }
}

fn cleanlog(home: &Home) -> u8 {
    match logs::clean(&home.logs_dir(), logs::MAX_AGE) {
        Ok(n) => {
            println!(
                "dsync: deleted {n} log files older than 7 days from {}",
                home.logs_dir().display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("dsync: cannot clean {}: {e}", home.logs_dir().display());
            exit::FAILURE
        }
    }
}

/// `-test`: create the home if needed, then check everything.
fn test(home: &Home, offline: bool) -> u8 {
    if !home.ensure_telling() {
        return exit::FAILURE;
    }
    let (plans, diags) = check::test(home, !offline);
    print!("{plans}{}", check::render(&diags));
    for line in super::plan::upstream_lines(home) {
        println!("dsync -test: {line}");
    }
    println!("dsync -test: {}", check::summary(&diags, home));
    if diags.iter().any(|d| d.is_error()) {
        exit::CONFIG
    } else {
        exit::OK
    }
}

/// `-setup`: write a repository file from answers given as options, or asked
/// for on the terminal.
fn setup(home: &Home, given: &SetupAnswers, overwrite: bool) -> u8 {
    if let Err(e) = home.ensure() {
        eprintln!("dsync: cannot create {}: {e}", home.root.display());
        return exit::FAILURE;
    }
    let lines = match setup_lines(given) {
        Ok(lines) => lines,
        Err(message) => {
            eprintln!("dsync -setup: {message}; nothing written");
            return exit::USAGE;
        }
    };
    let name = &lines[0].1;
    let path = home.repos_dir().join(format!("{name}.conf"));
    if path.exists() && !overwrite {
        eprintln!(
            "dsync -setup: {} exists; add -force to replace it",
            path.display()
        );
        return exit::FAILURE;
    }
    let mut text = String::from("# written by dsync -setup\n");
    for (key, value) in &lines {
        text.push_str(&format!("{key}={value}\n"));
    }
    let (_, diags) = super::repo::parse(&path, &text);
    if diags.iter().any(|d| d.is_error()) {
        print!("{}", check::render(&diags));
        eprintln!("dsync -setup: nothing written");
        return exit::CONFIG;
    }
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("dsync -setup: cannot write {}: {e}", path.display());
        return exit::FAILURE;
    }
    println!(
        "dsync -setup: wrote {}; check it with: dsync -test",
        path.display()
    );
    exit::OK
}

/// The file's `key=value` lines, `repo=` first: from a setup link, or from
/// the options and the answers on the terminal.
fn setup_lines(given: &SetupAnswers) -> Result<Vec<(String, String)>, String> {
    if let Some(link) = &given.link {
        if given.repo.is_some() || given.save.is_some() || given.src.is_some() {
            return Err("give either a setup link or -repo/-save/-src, not both".into());
        }
        return super::setup_link::lines(link);
    }
    let answers = complete(given)?;
    let (Some(name), Some(save)) = (answers.repo, answers.save) else {
        return Err("a repository name and a save folder are needed".into());
    };
    let mut lines = vec![("repo".to_string(), name), ("save".to_string(), save)];
    for (key, value) in [("src", answers.src), ("timeset", answers.timeset)] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            lines.push((key.to_string(), value));
        }
    }
    Ok(lines)
}

/// Ask for what the options did not give, when stdin is a terminal or a pipe
/// with answers; each answer is one line.
fn complete(given: &SetupAnswers) -> Result<SetupAnswers, String> {
    let mut answers = given.clone();
    if answers.repo.is_some() && answers.save.is_some() {
        return Ok(answers);
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut ask = |question: &str| -> Result<String, String> {
        print!("{question}: ");
        let _ = std::io::stdout().flush();
        match lines.next() {
            Some(Ok(line)) => Ok(line.trim().to_string()),
            _ => Err("no answer on standard input; give -repo NAME -save DIR instead".into()),
        }
    };
    if answers.repo.is_none() {
        answers.repo = Some(ask("repository name (e.g. kali)")?);
    }
    if answers.save.is_none() {
        answers.save = Some(ask("mirror folder, absolute (save=)")?);
    }
    if answers.src.is_none() {
        answers.src = Some(ask(
            "upstream rsync:// URL (empty: look the name up in the catalog)",
        )?);
    }
    if answers.timeset.is_none() {
        answers.timeset = Some(ask("hours to sync, e.g. 00,06,12,18 (empty: every run)")?);
    }
    Ok(answers)
}
