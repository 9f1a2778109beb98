//! Shell arithmetic, `$(( EXPR ))`, as bash evaluates it: 64-bit integers
//! that wrap, C's operators and precedence, variables by bare name (whose
//! values are themselves expressions), and `&&`, `||` and `?:` that do not
//! evaluate the side they skip. `EXPR` arrives here already expanded
//! (`$VAR`, `${VAR:-1}` and quotes are done by the caller, as bash does first).
//!
//! Nothing here changes a variable: assignment operators (`=`, `+=`, `++`…)
//! are refused, so a config line stays a pure computation.

use super::vars::Vars;

/// How deep variables may refer to variables (`A=B`, `B=C`…) and
/// parentheses may nest; bash stops at 1024, a config needs a handful.
const MAX_DEPTH: usize = 64;

/// Why an expression has no value, in words for the config's error message.
pub(super) type Error = String;

/// The value of `expr`, with `vars` for bare names.
pub(super) fn eval(expr: &str, vars: &Vars) -> Result<i64, Error> {
    eval_at(expr, vars, 0)
}

fn eval_at(expr: &str, vars: &Vars, depth: usize) -> Result<i64, Error> {
    if depth > MAX_DEPTH {
        return Err("expression recursion level exceeded".into());
    }
    let tokens = tokenize(expr)?;
    let mut p = Parser {
        tokens,
        at: 0,
        vars,
        depth,
    };
    if p.tokens.is_empty() {
        // `$(( ))` is 0 in bash.
        return Ok(0);
    }
    let value = p.comma(true)?;
    match p.peek() {
        None => Ok(value),
        Some(t) => Err(format!(
            "syntax error in expression (error token is \"{}\")",
            t.text()
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(i64),
    Name(String),
    Op(&'static str),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Num(n) => n.to_string(),
            Tok::Name(n) => n.clone(),
            Tok::Op(o) => o.to_string(),
        }
    }
}

/// Operators, longest first so `<<` is not read as `<`.
const OPS: &[&str] = &[
    "<<=", ">>=", "**", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "++", "--", "+=", "-=",
    "*=", "/=", "%=", "&=", "^=", "|=", "+", "-", "*", "/", "%", "<", ">", "!", "~", "&", "^", "|",
    "?", ":", "(", ")", ",", "=",
];

/// Operators that would assign: not allowed in a config.
const ASSIGNING: &[&str] = &[
    "=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|=", "++", "--",
];

fn tokenize(expr: &str) -> Result<Vec<Tok>, Error> {
    let mut tokens = Vec::new();
    let mut rest = expr.trim_start();
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#' || c == '@' || c == '_'))
                .unwrap_or(rest.len());
            tokens.push(Tok::Num(number(&rest[..end])?));
            rest = &rest[end..];
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            tokens.push(Tok::Name(rest[..end].to_string()));
            rest = &rest[end..];
        } else if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
            if ASSIGNING.contains(op) {
                return Err(format!(
                    "'{op}' would assign a variable inside $((...)); assign it on a line of its own"
                ));
            }
            tokens.push(Tok::Op(op));
            rest = &rest[op.len()..];
        } else {
            return Err(format!(
                "syntax error: invalid arithmetic operator (error token is \"{rest}\")"
            ));
        }
        rest = rest.trim_start();
    }
    Ok(tokens)
}

/// A number as bash reads one: `10`, `0x1f`, `017` (octal), `2#101`
/// (any base from 2 to 64, digits `0-9a-zA-Z@_`).
fn number(text: &str) -> Result<i64, Error> {
    let invalid = || format!("value too great for base (error token is \"{text}\")");
    let (base, digits) = if let Some((base, digits)) = text.split_once('#') {
        let base: u32 = base.parse().map_err(|_| invalid())?;
        if !(2..=64).contains(&base) || digits.is_empty() {
            return Err(format!(
                "invalid arithmetic base (error token is \"{text}\")"
            ));
        }
        (base, digits)
    } else if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        (16, hex)
    } else if text.len() > 1 && text.starts_with('0') {
        (8, &text[1..])
    } else {
        (10, text)
    };
    let mut value: i64 = 0;
    for c in digits.chars() {
        let digit = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 10,
            // Up to base 36 letters are digits in either case, as in bash.
            'A'..='Z' if base <= 36 => c as u32 - 'A' as u32 + 10,
            'A'..='Z' => c as u32 - 'A' as u32 + 36,
            '@' => 62,
            '_' => 63,
            _ => return Err(invalid()),
        };
        if digit >= base {
            return Err(invalid());
        }
        value = value
            .wrapping_mul(i64::from(base))
            .wrapping_add(i64::from(digit));
    }
    Ok(value)
}

struct Parser<'v> {
    tokens: Vec<Tok>,
    at: usize,
    vars: &'v Vars,
    depth: usize,
}

/// Binary operators from loosest to tightest (`**` and the unary ones are
/// handled apart); each level is left-associative.
const LEVELS: &[&[&str]] = &[
    &["|"],
    &["^"],
    &["&"],
    &["==", "!="],
    &["<", "<=", ">", ">="],
    &["<<", ">>"],
    &["+", "-"],
    &["*", "/", "%"],
];

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, op: &str) -> Result<(), Error> {
        if self.eat(op) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => format!(
                "syntax error: '{op}' expected (error token is \"{}\")",
                t.text()
            ),
            None => format!("syntax error: '{op}' expected at the end of the expression"),
        })
    }

    /// `a, b`: both evaluated, the value is `b`'s. `live` is false on a
    /// side that `&&`, `||` or `?:` skips: it is parsed, not evaluated.
    fn comma(&mut self, live: bool) -> Result<i64, Error> {
        let mut value = self.ternary(live)?;
        while self.eat(",") {
            value = self.ternary(live)?;
        }
        Ok(value)
    }

    fn ternary(&mut self, live: bool) -> Result<i64, Error> {
        let cond = self.logical_or(live)?;
        if !self.eat("?") {
            return Ok(cond);
        }
        let yes = self.comma(live && cond != 0)?;
        self.expect(":")?;
        let no = self.ternary(live && cond == 0)?;
        Ok(if cond != 0 { yes } else { no })
    }

    fn logical_or(&mut self, live: bool) -> Result<i64, Error> {
        let mut value = self.logical_and(live)?;
        while self.eat("||") {
            let right = self.logical_and(live && value == 0)?;
            value = i64::from(value != 0 || right != 0);
        }
        Ok(value)
    }

    fn logical_and(&mut self, live: bool) -> Result<i64, Error> {
        let mut value = self.binary(0, live)?;
        while self.eat("&&") {
            let right = self.binary(0, live && value != 0)?;
            value = i64::from(value != 0 && right != 0);
        }
        Ok(value)
    }

    fn binary(&mut self, level: usize, live: bool) -> Result<i64, Error> {
        let Some(ops) = LEVELS.get(level) else {
            return self.power(live);
        };
        let mut value = self.binary(level + 1, live)?;
        while let Some(op) = ops.iter().find(|op| self.peek() == Some(&Tok::Op(op))) {
            self.at += 1;
            let right = self.binary(level + 1, live)?;
            value = if live { apply(op, value, right)? } else { 0 };
        }
        Ok(value)
    }

    /// `a ** b`, right-associative, binding tighter than `*`.
    fn power(&mut self, live: bool) -> Result<i64, Error> {
        let base = self.unary(live)?;
        if !self.eat("**") {
            return Ok(base);
        }
        let exp = self.power(live)?;
        if !live {
            return Ok(0);
        }
        let exp = u32::try_from(exp).map_err(|_| match exp < 0 {
            true => "exponent less than 0".to_string(),
            false => "exponent too large".to_string(),
        })?;
        Ok(base.wrapping_pow(exp))
    }

    fn unary(&mut self, live: bool) -> Result<i64, Error> {
        for op in ["-", "+", "!", "~"] {
            if self.eat(op) {
                let v = self.unary(live)?;
                return Ok(match op {
                    "-" => v.wrapping_neg(),
                    "+" => v,
                    "!" => i64::from(v == 0),
                    _ => !v,
                });
            }
        }
        self.primary(live)
    }

    fn primary(&mut self, live: bool) -> Result<i64, Error> {
        let token = self.peek().cloned();
        self.at += 1;
        match token {
            Some(Tok::Num(n)) => Ok(n),
            Some(Tok::Name(name)) if live => self.variable(&name),
            Some(Tok::Name(_)) => Ok(0),
            Some(Tok::Op("(")) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err("expression nested too deeply".into());
                }
                let value = self.comma(live)?;
                self.depth -= 1;
                self.expect(")")?;
                Ok(value)
            }
            Some(t) => Err(format!(
                "syntax error: operand expected (error token is \"{}\")",
                t.text()
            )),
            None => Err("syntax error: operand expected at the end of the expression".into()),
        }
    }

    /// A bare name: unset is an error (ftpsync sources its config with
    /// `set -u`), empty is 0, anything else is an expression of its own.
    fn variable(&self, name: &str) -> Result<i64, Error> {
        match self.vars.get(name) {
            None => Err(format!(
                "variable {name} is not set; ftpsync reads this file with 'set -u': set {name} \
                 before this line or write ${{{name}:-0}}"
            )),
            Some(value) if value.trim().is_empty() => Ok(0),
            Some(value) => eval_at(value, self.vars, self.depth + 1)
                .map_err(|e| format!("in the value of {name} ({value:?}): {e}")),
        }
    }
}

fn apply(op: &str, a: i64, b: i64) -> Result<i64, Error> {
    Ok(match op {
        "|" => a | b,
        "^" => a ^ b,
        "&" => a & b,
        "==" => i64::from(a == b),
        "!=" => i64::from(a != b),
        "<" => i64::from(a < b),
        "<=" => i64::from(a <= b),
        ">" => i64::from(a > b),
        ">=" => i64::from(a >= b),
        // C shifts by the count modulo the width on the machines bash runs on.
        "<<" => a.wrapping_shl(b as u32),
        ">>" => a.wrapping_shr(b as u32),
        "+" => a.wrapping_add(b),
        "-" => a.wrapping_sub(b),
        "*" => a.wrapping_mul(b),
        "/" | "%" if b == 0 => return Err("division by 0".into()),
        "/" => a.wrapping_div(b),
        "%" => a.wrapping_rem(b),
        _ => unreachable!("operator {op} has no level"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expr: &str) -> i64 {
        let mut vars = Vars::new();
        vars.set("A", "7");
        vars.set("E", "");
        vars.set("R", "A * 2");
        eval(expr, &vars).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn operators_and_precedence_are_cs() {
        for (expr, want) in [
            ("40 * 1024", 40960),
            ("1 + 2 * 3", 7),
            ("(1 + 2) * 3", 9),
            ("7 / 2", 3),
            ("-7 / 2", -3),
            ("-7 % 3", -1),
            ("2 ** 3 ** 2", 512),
            ("-2 ** 2", 4),
            ("1 << 4 >> 2", 4),
            ("3 > 2 == 1", 1),
            ("5 & 3 | 8 ^ 1", 9),
            ("!0 + ~0", 0),
            ("1 ? 2 : 3", 2),
            ("0 ? 2 : 0 ? 3 : 4", 4),
            ("1, 2", 2),
            ("", 0),
            ("0x1f + 010 + 2#101 + 36#z + 64#_", 31 + 8 + 5 + 35 + 63),
            ("9223372036854775807 + 1", i64::MIN),
        ] {
            assert_eq!(value(expr), want, "{expr}");
        }
    }

    #[test]
    fn names_are_variables_whose_values_are_expressions() {
        assert_eq!(value("A + 1"), 8);
        assert_eq!(value("E + 1"), 1);
        assert_eq!(value("R + 1"), 15);
        // The side a condition skips is not evaluated: no error for it.
        assert_eq!(value("0 && 1 / 0"), 0);
        assert_eq!(value("1 || NOPE"), 1);
        assert_eq!(value("A > 1 ? A : 1 / 0"), 7);
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        let vars = Vars::new();
        for (expr, why) in [
            ("1 / 0", "division by 0"),
            ("NOPE + 1", "NOPE is not set"),
            ("A = 1", "would assign"),
            ("A++", "would assign"),
            ("1 +", "operand expected"),
            ("(1", "')' expected"),
            ("1 2", "syntax error"),
            ("2 ** -1", "exponent less than 0"),
            ("08", "value too great"),
            ("1 $ 2", "invalid arithmetic operator"),
        ] {
            let e = eval(expr, &vars).unwrap_err();
            assert!(e.contains(why), "{expr}: {e}");
        }
        let mut looped = Vars::new();
        looped.set("L", "L + 1");
        assert!(eval("L", &looped).unwrap_err().contains("recursion"));
    }
}
