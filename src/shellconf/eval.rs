//! Evaluating parsed commands: expansions with bash's `set -u` semantics,
//! tilde expansion as bash does it in assignments, and the assignments.

use std::ffi::{CStr, CString};

use super::Vars;
use super::arith;
use super::parse::{Assignment, Command, DeclArg};
use super::subst;
use super::word::{Op, Param, Part, Word};
use super::{Fail, fail};

/// Where a word stands, which decides where `~` is expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tilde {
    /// An ordinary word: only a leading `~`.
    Start,
    /// An assignment value: a leading `~` and one after each unquoted `:`
    /// (`PATH=~/bin:~/sbin`).
    Assignment,
}

pub(super) fn run(commands: &[Command], vars: &mut Vars) -> Result<(), Fail> {
    for command in commands {
        match command {
            Command::Assign(assignments) => {
                for a in assignments {
                    assign(a, vars)?;
                }
            }
            Command::Export(args) | Command::Readonly(args) => {
                let export = matches!(command, Command::Export(_));
                for arg in args {
                    let name = match arg {
                        DeclArg::Assign(a) => assign(a, vars)?,
                        DeclArg::Name(name) => name,
                    };
                    if export {
                        vars.export(name);
                    }
                }
            }
            Command::Unset(names) => names.iter().for_each(|n| vars.unset(n)),
            Command::Noop(args) => {
                for arg in args {
                    expand(arg, Tilde::Start, vars)?;
                }
            }
        }
    }
    Ok(())
}

fn assign<'a>(a: &'a Assignment, vars: &mut Vars) -> Result<&'a str, Fail> {
    let value = expand(&a.value, Tilde::Assignment, vars)?;
    // `A+=x` on an unset A is no reference to it, so `set -u` allows it.
    let value = match (a.append, vars.get(&a.name)) {
        (true, Some(old)) => format!("{old}{value}"),
        _ => value,
    };
    vars.set(&a.name, value);
    Ok(&a.name)
}

/// Expand a word to its single string value (no word splitting, no globbing).
fn expand(word: &Word, mode: Tilde, vars: &mut Vars) -> Result<String, Fail> {
    let mut out = String::new();
    // Whether the next character starts a place where `~` is expanded.
    let mut tilde_point = true;
    for (k, part) in word.parts.iter().enumerate() {
        match part {
            Part::Lit {
                text,
                quoted: false,
            } => {
                let word_ends = k + 1 == word.parts.len();
                out.push_str(&tilde_lit(text, mode, tilde_point, word_ends, vars));
                tilde_point = mode == Tilde::Assignment && text.ends_with(':');
                continue;
            }
            Part::Lit { text, quoted: true } => out.push_str(text),
            Part::Param(p) => out.push_str(&param(p, mode, vars)?),
            Part::Subst(s) => {
                let argv = s
                    .argv
                    .iter()
                    .map(|w| expand(w, Tilde::Start, vars))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push_str(&subst::run(&argv, s.pos)?);
            }
            Part::Arith(a) => {
                let expr = expand(&a.expr, Tilde::Start, vars)?;
                let value = arith::eval(&expr, vars).map_err(|why| Fail {
                    pos: a.pos,
                    message: format!("$(({})): {why}", a.expr.raw),
                })?;
                out.push_str(&value.to_string());
            }
        }
        tilde_point = false;
    }
    Ok(out)
}

/// Tilde-expand unquoted literal text. A tilde-prefix runs up to a `/` (or
/// `:` in an assignment); if it runs on into quoted text or an expansion
/// (`~"/x"`, `~$U`) bash leaves it alone, and so do we.
fn tilde_lit(text: &str, mode: Tilde, at_start: bool, word_ends: bool, vars: &Vars) -> String {
    let segments: Vec<&str> = match mode {
        Tilde::Assignment => text.split(':').collect(),
        Tilde::Start => vec![text],
    };
    let last = segments.len() - 1;
    let mut out = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let expanded = (at_start || i > 0)
            .then(|| seg.strip_prefix('~'))
            .flatten()
            .and_then(|rest| {
                let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let prefix_ends = !tail.is_empty() || i < last || word_ends;
                prefix_ends
                    .then(|| Some(format!("{}{tail}", tilde_home(user, vars)?)))
                    .flatten()
            });
        out.push(expanded.unwrap_or_else(|| seg.to_string()));
    }
    out.join(":")
}

/// What `~user` stands for; None leaves the text as it is (unknown user).
fn tilde_home(user: &str, vars: &Vars) -> Option<String> {
    match user {
        "" => vars
            .get("HOME")
            .map(str::to_string)
            .or_else(|| passwd_home(None)),
        "+" => vars.get("PWD").map(str::to_string),
        "-" => vars.get("OLDPWD").map(str::to_string),
        _ => passwd_home(Some(user)),
    }
}

/// Home directory from the password database: of `user`, or of the current
/// user. Uses the reentrant calls since tests (and callers) run in threads.
fn passwd_home(user: Option<&str>) -> Option<String> {
    let user = user.map(CString::new).transpose().ok()?;
    let mut size = 4096;
    loop {
        // SAFETY: all pointers are to live locals; passwd is plain data that
        // getpw*_r fills in, with strings pointing into `buf`, read before it goes.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; size];
            let mut result = std::ptr::null_mut();
            let rc = match &user {
                Some(u) => {
                    libc::getpwnam_r(u.as_ptr(), &mut pwd, buf.as_mut_ptr(), size, &mut result)
                }
                None => libc::getpwuid_r(
                    libc::getuid(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    size,
                    &mut result,
                ),
            };
            if rc == libc::ERANGE && size < 1 << 20 {
                size *= 4;
                continue;
            }
            if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
                return None;
            }
            return Some(CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned());
        }
    }
}

/// Expand `$NAME` / `${...}`. `mode` is that of the enclosing word: the word
/// inside `${A:-w}` gets tilde expansion like it (`${LOGDIR:-~/log}`).
fn param(p: &Param, mode: Tilde, vars: &mut Vars) -> Result<String, Fail> {
    let value = vars.get(&p.name).map(str::to_string);
    // ${A:-w} treats empty like unset; ${A-w} only unset.
    let usable = value.as_deref().is_some_and(|v| !p.colon || !v.is_empty());
    match p.op {
        Op::Plain => value.ok_or_else(|| unset(p)),
        Op::Length => value
            .map(|v| v.chars().count().to_string())
            .ok_or_else(|| unset(p)),
        Op::Default | Op::Assign if usable => Ok(value.unwrap_or_default()),
        Op::Default => expand(&p.word, mode, vars),
        Op::Assign => {
            let v = expand(&p.word, mode, vars)?;
            vars.set(&p.name, v.clone());
            Ok(v)
        }
        Op::Alt if usable => expand(&p.word, mode, vars),
        Op::Alt => Ok(String::new()),
        Op::Error if usable => Ok(value.unwrap_or_default()),
        Op::Error => {
            let message = expand(&p.word, mode, vars)?;
            let message = match (message.is_empty(), p.colon) {
                (false, _) => message,
                (true, true) => format!(
                    "parameter null or not set; set {} to a non-empty value",
                    p.name
                ),
                (true, false) => format!("parameter not set; set {}", p.name),
            };
            fail(p.pos, format!("{}: {message}", p.name))
        }
    }
}

fn unset(p: &Param) -> Fail {
    let name = &p.name;
    Fail {
        pos: p.pos,
        message: format!(
            "variable {name} is not set; ftpsync reads this file with 'set -u': set {name} before \
             this line or write ${{{name}:-default}}"
        ),
    }
}
