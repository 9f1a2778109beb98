//! `ftpsync` mode: Debian's ftpsync 20180513+nmu1, reimplemented.
//!
//! [`run`] goes through the same steps in the same order as the shell script:
//! command line, config, defaults, lock, hooks, the two rsync stages in a loop
//! while pushes keep arriving, trace files, downstream triggers, cleanup.

pub mod argv;
pub mod check;
pub mod cli;
pub mod cron;
mod engine;
pub mod push;
pub mod runmirrors;
pub mod settings;

use std::path::PathBuf;

use crate::exit;
use settings::SettingsError;

/// Run as ftpsync. `program` is the name we were invoked as (`ftpsync`, or a
/// symlink like `ftpsync-security`); it names the config and logs.
pub fn run(program: &str, args: &[String]) -> u8 {
    // Ours, not ftpsync's (whose getopts knows only -T): check, do not sync.
    if args.first().map(String::as_str) == Some("-test") {
        return check::one(program, &args[1..]);
    }
    let ssh_command = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    let request = match cli::parse(args, ssh_command.as_deref()) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("{program}: {e}");
            return exit::USAGE;
        }
    };
    for word in &request.ignored {
        println!("Unknown option {word} ignored");
    }
    let name = match request.archive.as_str() {
        "" => program.to_string(),
        archive => format!("{program}-{archive}"),
    };
    let mut vars = settings::initial_vars(&name, &request);
    let config_path = match settings::load(&name, &mut vars) {
        Ok(path) => path,
        Err(e) => return report(program, &e),
    };
    run_loaded(program, &name, config_path, vars, request)
}

/// A config that lives inside another file: the ftpsync block of a dsync
/// repository file (`ftpsync=true` followed by a pasted ftpsync.conf).
pub struct Embedded<'a> {
    /// The repository name: names the logs (`NAME.log`, `rsync-NAME.log`).
    pub name: &'a str,
    pub file: &'a std::path::Path,
    pub text: &'a str,
    /// Line of `file` on which `text` starts, so messages name real lines.
    pub first_line: usize,
    /// Defaults the block may override: `TO` (the repo's `save`) and `LOGDIR`.
    pub defaults: Vec<(&'a str, String)>,
    /// Values that win over the block's (the upstream the repository layer
    /// found: intranet mode, or the catalog for a block without `RSYNC_HOST`).
    pub overrides: Vec<(&'a str, String)>,
}

impl Embedded<'_> {
    /// The variables after ftpsync's start-up, the defaults and the block, as
    /// a `sync:all` run sees them.
    pub fn eval(&self, request: &cli::Request) -> Result<crate::shellconf::Vars, SettingsError> {
        let mut vars = settings::initial_vars(self.name, request);
        for (var, value) in &self.defaults {
            vars.set(var, value.as_str());
        }
        // Blank lines in front keep shellconf's line numbers those of the file.
        let text = "\n".repeat(self.first_line.saturating_sub(1)) + self.text;
        let label = self.file.display().to_string();
        crate::shellconf::eval_str(&label, &text, &mut vars)?;
        for (var, value) in &self.overrides {
            vars.set(var, value.as_str());
        }
        Ok(vars)
    }
}

/// Run the ftpsync engine on an embedded config, as `sync:all` from cron would.
pub fn run_embedded(config: &Embedded<'_>) -> u8 {
    let request = cli::Request::default();
    let vars = match config.eval(&request) {
        Ok(vars) => vars,
        Err(e) => return report(config.name, &e),
    };
    run_loaded(
        config.name,
        config.name,
        config.file.to_path_buf(),
        vars,
        request,
    )
}

/// From an evaluated config on: the overrides the config may make, the log
/// folder, the checked settings, and the engine.
fn run_loaded(
    program: &str,
    name: &str,
    config_path: PathBuf,
    mut vars: crate::shellconf::Vars,
    mut request: cli::Request,
) -> u8 {
    // The config may override what the command line asked for, as in ftpsync.
    let flag = |var: &str| vars.get(var) == Some("true");
    request.stage1 = flag("SYNCSTAGE1");
    request.stage2 = flag("SYNCSTAGE2");
    request.all = flag("SYNCALL");
    request.mhop = flag("SYNCMHOP");
    request.callback = flag("SYNCCALLBACK");

    let logdir = PathBuf::from(vars.get("LOGDIR").unwrap_or_default());
    if let Err(e) = std::fs::create_dir_all(&logdir) {
        eprintln!("{program}: cannot create LOGDIR {}: {e}", logdir.display());
        return exit::FAILURE;
    }
    let settings = match settings::resolve(name, config_path, &mut vars) {
        Ok(settings) => settings,
        Err(e) => return report(program, &e),
    };
    engine::run(settings, request)
}

fn report(program: &str, error: &SettingsError) -> u8 {
    match error {
        SettingsError::NoConfig { searched, .. } => {
            eprintln!("{error}");
            let list: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
            eprintln!("{program}: looked for: {}", list.join(", "));
            exit::CONFIG
        }
        SettingsError::Parse(_)
        | SettingsError::NotANumber { .. }
        | SettingsError::OptionLike { .. } => {
            eprintln!("{program}: {error}");
            exit::CONFIG
        }
        _ => {
            eprintln!("{program}: {error}");
            exit::FAILURE
        }
    }
}
