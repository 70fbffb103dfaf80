//! Generates what the packages ship besides the binary, from the agent declarations in
//! `cloudha::agents::AGENTS`: man pages (`cloudha(8)`, `ocf_cloudha_<agent>(7)`), shell
//! completions (bash, zsh, fish) and a commented `<agent>.conf` template for each agent.
//! A thin CLI over `cloudha::docs`, which does the generating. Not shipped; `make packages` (packaging/build.sh) runs it.
//!
//!     cargo run --example gendoc -- agents        # the agent names, one per line
//!     cargo run --example gendoc -- crs-type-attrs AGENT  # `crsctl add type -attr` value
//!     cargo run --example gendoc -- write OUTDIR  # OUTDIR/{man,completions,conf}/...
//!
//! The man page date comes from `SOURCE_DATE_EPOCH` (reproducible builds); without it the page
//! carries no date.

use std::path::Path;
use std::process::ExitCode;

use cloudha::agents::AGENTS;
use cloudha::docs::{conf::crs_type_attrs, write_all};

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
        ["write", out] => match write_all(Path::new(out)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gendoc: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: gendoc agents | gendoc crs-type-attrs AGENT | gendoc write OUTDIR");
            ExitCode::from(2)
        }
    }
}
