//! All text derived from the agent declarations (`crate::agents::AGENTS`), in one place:
//! meta-data XML and `--help` ([`metadata`]), man pages ([`man`]), shell completions
//! ([`completions`]), `.conf` templates and Clusterware type attributes ([`conf`]). This file
//! holds the helpers they share (wrapping, a parameter's type and flags) and [`write_all`],
//! which `examples/gendoc.rs` (run by `make packages`) calls.

use std::fs;
use std::path::Path;

use crate::agents::AGENTS;
use crate::params::{Param, Type};

pub mod completions;
pub mod conf;
pub mod man;
pub mod metadata;

/// Where the packages install the OCF agent links (a macro too, so constant text can be built
/// from it).
macro_rules! ocf_dir {
    () => {
        "/usr/lib/ocf/resource.d/cloudha"
    };
}
pub(crate) use ocf_dir;
pub const OCF_DIR: &str = ocf_dir!();
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Writes OUT/{man,completions,conf}/... The man page date comes from `SOURCE_DATE_EPOCH`
/// (reproducible builds); without it the page carries no date.
pub fn write_all(out: &Path) -> std::io::Result<()> {
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(man::iso_date)
        .unwrap_or_default();
    for d in ["man", "completions", "conf"] {
        fs::create_dir_all(out.join(d))?;
    }
    fs::write(out.join("man/cloudha.8"), man::man_cloudha(&date))?;
    fs::write(out.join("man/fence_cloudha.8"), man::man_fence(&date))?;
    for a in AGENTS {
        fs::write(
            out.join(format!("man/ocf_cloudha_{}.7", a.name)),
            man::man_agent(a, &date),
        )?;
        fs::write(
            out.join(format!("conf/{}.conf", a.name)),
            conf::conf_template(a),
        )?;
    }
    fs::write(out.join("completions/cloudha.bash"), completions::bash())?;
    fs::write(out.join("completions/_cloudha"), completions::zsh())?;
    fs::write(out.join("completions/cloudha.fish"), completions::fish())?;
    Ok(())
}

/// A parameter's type in words, as help, man and conf say it.
pub fn type_desc(p: &Param) -> String {
    match p.ty {
        Type::String => "string".into(),
        Type::Boolean => "boolean".into(),
        Type::Integer { min, max } => format!("integer, {min} to {max}"),
        Type::Select(o) => format!("one of: {}", o.join(", ")),
    }
}

/// A parameter's type and flags (required, default, unique group, reloadable) in one line.
pub fn param_flags(p: &Param) -> String {
    let mut f = vec![type_desc(p)];
    if p.required {
        f.push("required".into());
    }
    if let Some(d) = p.default {
        f.push(format!("default: {d}"));
    }
    if let Some(g) = p.unique_group {
        f.push(format!("unique group: {g}"));
    }
    if p.reloadable {
        f.push("reloadable".into());
    }
    f.join("; ")
}

/// An advertised action's attributes as meta-data and man pages give them (after its name).
pub fn action_attrs(d: &crate::agents::ActionDecl) -> Vec<(&'static str, String)> {
    let mut a = vec![("timeout", format!("{}s", d.timeout))];
    if let Some(i) = d.interval {
        a.push(("interval", format!("{i}s")));
    }
    if let Some(dep) = d.depth {
        a.push(("depth", dep.to_string()));
    }
    a
}

/// Words of `text` in lines of at most `width` characters (a longer word gets its own line).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let cur = lines.last_mut().expect("never empty");
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    lines
}
