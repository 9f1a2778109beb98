//! ftpsync's command line: `-T TRIGGER`, then words like `sync:stage1`, which may
//! also arrive through `SSH_ORIGINAL_COMMAND` from an ssh forced command.

/// What a run was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `sync:archive:NAME`: use `ftpsync-NAME.conf` and name logs after it.
    pub archive: String,
    pub stage1: bool,
    pub stage2: bool,
    pub all: bool,
    pub mhop: bool,
    pub callback: bool,
    /// `-T TRIGGER`, or `ssh` when called through an ssh forced command.
    pub trigger: Option<String>,
    /// Words we did not understand; ftpsync prints and ignores them.
    pub ignored: Vec<String>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            archive: String::new(),
            stage1: false,
            stage2: false,
            all: true,
            mhop: false,
            callback: false,
            trigger: None,
            ignored: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("illegal option -- {0}")]
    Illegal(char),
    #[error("option requires an argument -- {0}")]
    MissingArgument(char),
}

/// Parse ftpsync's arguments. `ssh_command` is `SSH_ORIGINAL_COMMAND` if set and
/// non-empty; its words are read before the command line's, so a forced command
/// in `authorized_keys` can override what the pushing side asked for.
pub fn parse(args: &[String], ssh_command: Option<&str>) -> Result<Request, CliError> {
    let mut request = Request::default();
    let rest = parse_options(args, &mut request)?;
    if let Some(command) = ssh_command.filter(|c| !c.is_empty()) {
        request.trigger.get_or_insert_with(|| "ssh".to_string());
        for word in command.split_whitespace() {
            request.apply(word);
        }
    }
    for word in rest {
        request.apply(word);
    }
    Ok(request)
}

/// getopts "T:": options until the first non-option word or `--`.
fn parse_options<'a>(args: &'a [String], request: &mut Request) -> Result<&'a [String], CliError> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            return Ok(&args[i + 1..]);
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            break;
        };
        // Only -T exists, and it takes the rest of the word or the next word.
        let flag = flags.chars().next().unwrap_or('T');
        if flag != 'T' {
            return Err(CliError::Illegal(flag));
        }
        let attached = &flags[1..];
        if !attached.is_empty() {
            request.trigger = Some(attached.to_string());
        } else {
            i += 1;
            let value = args.get(i).ok_or(CliError::MissingArgument('T'))?;
            request.trigger = Some(value.clone());
        }
        i += 1;
    }
    Ok(&args[i..])
}

impl Request {
    fn apply(&mut self, word: &str) {
        match word {
            "sync:stage1" => {
                self.stage1 = true;
                self.all = false;
            }
            "sync:stage2" => {
                self.stage2 = true;
                self.all = false;
            }
            "sync:callback" => self.callback = true,
            "sync:all" => self.all = true,
            "sync:mhop" => self.mhop = true,
            _ => match word.strip_prefix("sync:archive:") {
                Some(name) => self.archive = name.to_string(),
                None => self.ignored.push(word.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stages_archive_and_trigger() {
        let r = parse(
            &words(&["-T", "cron", "sync:archive:security", "sync:stage1"]),
            None,
        )
        .unwrap();
        assert_eq!(r.trigger.as_deref(), Some("cron"));
        assert_eq!(r.archive, "security");
        assert!(r.stage1 && !r.all && !r.stage2);
        let r = parse(&words(&["-Tmanual", "sync:stage2", "sync:all"]), None).unwrap();
        assert_eq!(r.trigger.as_deref(), Some("manual"));
        assert!(r.stage2 && r.all);
    }

    #[test]
    fn ssh_words_come_first_and_set_the_trigger() {
        let r = parse(
            &words(&["sync:archive:local"]),
            Some("sync:archive:x sync:stage2 bogus"),
        )
        .unwrap();
        assert_eq!(r.archive, "local");
        assert_eq!(r.trigger.as_deref(), Some("ssh"));
        assert!(r.stage2 && !r.all);
        assert_eq!(r.ignored, vec!["bogus".to_string()]);
        let r = parse(&words(&["-T", "push"]), Some("sync:all")).unwrap();
        assert_eq!(r.trigger.as_deref(), Some("push"));
    }

    #[test]
    fn bad_options() {
        assert_eq!(parse(&words(&["-x"]), None), Err(CliError::Illegal('x')));
        assert_eq!(
            parse(&words(&["-T"]), None),
            Err(CliError::MissingArgument('T'))
        );
        // After the first word, dashes are ordinary (ignored) words.
        let r = parse(&words(&["sync:all", "-x"]), None).unwrap();
        assert_eq!(r.ignored, vec!["-x".to_string()]);
    }
}
