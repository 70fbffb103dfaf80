//! Generates what the packages ship besides the binary, from the agent declarations in
//! `cloudha::agents::AGENTS`: man pages (`cloudha(8)`, `fence_cloudha(8)`,
//! `ocf_cloudha_<agent>(7)`), shell completions (bash, zsh, fish) and a commented
//! `<agent>.conf` template for each agent. Not shipped; `make packages` (packaging/build.sh) runs
//! it. Its crates (clap_mangen, roff, clap_complete, time) are dev-dependencies, so they never
//! reach the binary.
//!
//!     cargo run --example gendoc -- agents        # the agent names, one per line
//!     cargo run --example gendoc -- crs-type-attrs AGENT  # `crsctl add type -attr` value
//!     cargo run --example gendoc -- write OUTDIR  # OUTDIR/{man,completions,conf}/...
//!
//! The man page date comes from `SOURCE_DATE_EPOCH` (reproducible builds: the same epoch gives
//! the same bytes); without it the pages carry no date, and a value that is not a Unix time is
//! refused.

mod completions;
mod man;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use cloudha::agents::AGENTS;
use cloudha::docs::conf::{conf_template, crs_type_attrs};

/// YYYY-MM-DD (UTC) of `SOURCE_DATE_EPOCH`, or "" when it is unset.
fn man_date(epoch: Option<&str>) -> Result<String, String> {
    let Some(raw) = epoch else {
        return Ok(String::new());
    };
    raw.trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| t.date().to_string())
        .ok_or_else(|| format!("SOURCE_DATE_EPOCH={raw:?} is not a Unix time"))
}

/// Writes OUT/{man,completions,conf}/... (the layout packaging/build.sh installs from).
fn write_all(out: &Path, date: &str) -> std::io::Result<()> {
    for d in ["man", "completions", "conf"] {
        fs::create_dir_all(out.join(d))?;
    }
    fs::write(out.join("man/cloudha.8"), man::cloudha(date))?;
    fs::write(out.join("man/fence_cloudha.8"), man::fence(date))?;
    for a in AGENTS {
        fs::write(
            out.join(format!("man/ocf_cloudha_{}.7", a.name)),
            man::agent(a, date),
        )?;
        fs::write(out.join(format!("conf/{}.conf", a.name)), conf_template(a))?;
    }
    fs::write(out.join("completions/cloudha.bash"), completions::bash())?;
    fs::write(out.join("completions/_cloudha"), completions::zsh())?;
    fs::write(out.join("completions/cloudha.fish"), completions::fish())?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["agents"] => {
            for a in AGENTS {
                println!("{}", a.name);
            }
            ExitCode::SUCCESS
        }
        ["crs-type-attrs", name] => match cloudha::agents::find(name) {
            Some(a) => {
                println!("{}", crs_type_attrs(a));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("gendoc: no agent '{name}'");
                ExitCode::FAILURE
            }
        },
        ["write", out] => {
            let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
            let written = man_date(epoch.as_deref())
                .and_then(|date| write_all(Path::new(out), &date).map_err(|e| e.to_string()));
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gendoc: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: gendoc agents | gendoc crs-type-attrs AGENT | gendoc write OUTDIR");
            ExitCode::from(2)
        }
    }
}
