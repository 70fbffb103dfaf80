//! How a fence call gets its options: `name=value` lines on stdin from the fencer (`#`
//! comments, last value wins, unknown names ignored), or command-line options for people
//! (`-o off -n i-0abc`, `--power-timeout=30`, a long option for every parameter).

use super::PARAMS;
use crate::error::{Error, Result, shown};
use crate::params::{Param, Raw, Source};

/// The options of one call.
#[derive(Debug, Default)]
pub struct Input {
    pub raw: Raw,
    /// Names the fencer passed that are not ours (its own `pcmk_*` options, other agents').
    pub ignored: Vec<String>,
    pub help: bool,
    pub version: bool,
}

fn by_name(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// The fencer's stdin.
pub fn parse_stdin(text: &str) -> Input {
    let mut input = Input::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => match by_name(k.trim()) {
                Some(p) => input.raw.set(p.name, v.trim(), Source::Stdin),
                None => input.ignored.push(k.trim().to_string()),
            },
            None => input.ignored.push(line.to_string()),
        }
    }
    input
}

/// Command-line options (without argv[0]).
pub fn parse_args(args: &[String]) -> Result<Input> {
    let mut input = Input::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (param, inline) = match arg.as_str() {
            "-h" | "--help" => {
                input.help = true;
                continue;
            }
            "-V" | "--version" => {
                input.version = true;
                continue;
            }
            long if long.starts_with("--") => {
                let (name, value) = match long[2..].split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (&long[2..], None),
                };
                (by_name(&name.replace('-', "_")), value)
            }
            short if short.len() == 2 && short.starts_with('-') => {
                let c = short.chars().nth(1);
                (PARAMS.iter().find(|p| p.short == c), None)
            }
            _ => (None, None),
        };
        let Some(p) = param else {
            return Err(Error::config(format!(
                "unknown option {}; see {} --help",
                shown(arg),
                super::NAME
            )));
        };
        let value = match inline {
            Some(v) => v.to_string(),
            None => it
                .next()
                .cloned()
                .ok_or_else(|| Error::config(format!("option {} needs a value", shown(arg))))?,
        };
        input.raw.set(p.name, &value, Source::CommandLine);
    }
    Ok(input)
}

/// The long option of a parameter as `--help` and the meta-data show it.
pub fn long_option(p: &Param) -> String {
    p.name.replace('_', "-")
}
