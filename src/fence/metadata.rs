//! The fence-agents meta-data (`-o metadata`), valid against fence-agents' metadata.rng, and
//! `--help`, both from the parameter declarations.

use std::fmt::Write as _;

use super::input::long_option;
use super::{FenceAction, LONGDESC, NAME, PARAMS, SHORTDESC};
use crate::docs::metadata::esc;
use crate::params::{Choice, Param, Type};

/// `-n, --plug=[value]` or `--power-timeout=[value]`.
pub fn getopt(p: &Param) -> String {
    let long = format!("--{}=[{}]", long_option(p), value_word(p));
    match p.short {
        Some(c) => format!("-{c}, {long}"),
        None => long,
    }
}

fn value_word(p: &Param) -> &'static str {
    match p.ty {
        Type::Integer { .. } => "seconds",
        Type::Select(_) => "word",
        _ => "value",
    }
}

pub fn xml() -> String {
    let mut x = String::new();
    let w = &mut x;
    let _ = writeln!(w, "<?xml version=\"1.0\" ?>");
    let _ = writeln!(
        w,
        "<resource-agent name=\"{NAME}\" shortdesc=\"{}\" >",
        esc(SHORTDESC)
    );
    let _ = writeln!(w, "<longdesc>{}</longdesc>", esc(LONGDESC));
    let _ = writeln!(
        w,
        "<vendor-url>https://aws.amazon.com/ec2/</vendor-url>\n<parameters>"
    );
    for p in PARAMS {
        let required = p.required || p.caller_supplies;
        let mut extra = String::new();
        if p.replaced_by.is_some() {
            extra.push_str(" deprecated=\"1\"");
        }
        for old in PARAMS.iter().filter(|o| o.replaced_by == Some(p.name)) {
            let _ = write!(extra, " obsoletes=\"{}\"", old.name);
        }
        let _ = writeln!(
            w,
            "\t<parameter name=\"{}\" unique=\"0\" required=\"{}\"{extra}>",
            p.name, required as u8
        );
        let _ = writeln!(w, "\t\t<getopt mixed=\"{}\" />", esc(&getopt(p)));
        let ty = match p.ty {
            Type::Integer { .. } => "second",
            Type::Boolean => "boolean",
            Type::Select(_) => "select",
            _ => "string",
        };
        let default = p
            .default
            .map(|d| format!(" default=\"{}\"", esc(d)))
            .unwrap_or_default();
        match p.ty {
            // The words a select takes, as fence-agents lists them (pcs checks values by them).
            Type::Select(words) => {
                let _ = writeln!(w, "\t\t<content type=\"{ty}\"{default}>");
                for word in words {
                    let _ = writeln!(w, "\t\t\t<option value=\"{}\" />", esc(word));
                }
                let _ = writeln!(w, "\t\t</content>");
            }
            _ => {
                let _ = writeln!(w, "\t\t<content type=\"{ty}\"{default} />");
            }
        }
        let _ = writeln!(
            w,
            "\t\t<shortdesc lang=\"en\">{}</shortdesc>",
            esc(p.longdesc)
        );
        let _ = writeln!(w, "\t</parameter>");
    }
    let _ = writeln!(w, "</parameters>\n<actions>");
    for a in FenceAction::WORDS {
        let auto = if *a == "on" { " automatic=\"0\"" } else { "" };
        let _ = writeln!(w, "\t<action name=\"{a}\"{auto} />");
    }
    let _ = writeln!(w, "</actions>\n</resource-agent>");
    x
}

/// `fence_cloudha --help`.
pub fn help() -> String {
    let mut h = format!(
        "{NAME}: {SHORTDESC}\n\nUsage: {NAME} [options]  (or name=value lines on stdin)\n\n"
    );
    for p in PARAMS {
        let _ = writeln!(h, "  {}", getopt(p));
        let mut text = p.longdesc.to_string();
        if let Some(d) = p.default {
            text.push_str(&format!(" Default: {d}."));
        }
        if let Type::Select(words) = p.ty {
            text.push_str(&format!(" One of: {}.", words.join(", ")));
        }
        for line in crate::docs::wrap(&text, 72) {
            let _ = writeln!(h, "        {line}");
        }
    }
    h
}
