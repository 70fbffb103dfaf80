//! Meta-data XML and help text, derived from the agent declarations.
//!
//! Two dialects, chosen by what the caller says it understands (`OCF_RA_VERSION_MINOR`):
//! - OCF 1.1 (Pacemaker ≥ 2.1 sets 1.1): `select` types, `unique-group`, `reloadable`, the
//!   `reload-agent` action; valid against the OCF 1.1 RelaxNG schema.
//! - OCF 1.0 (no version given, e.g. ocf-tester): valid against resource-agents'
//!   `ra-api-1.dtd`, which knows none of those. Selects become strings with the choices in the
//!   description, a unique group becomes `unique="1"`, and `reload-agent` is not advertised
//!   (1.0 callers would call `reload` for every non-unique change, which is not what it does).

use std::fmt::Write;

use crate::action::Action;
use crate::agents::AgentDef;
use crate::params::Type;

use super::wrap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Ocf10,
    Ocf11,
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn xml(agent: &AgentDef, dialect: Dialect) -> String {
    let mut x = String::new();
    let w = &mut x;
    let _ = writeln!(w, "<?xml version=\"1.0\"?>");
    if dialect == Dialect::Ocf10 {
        let _ = writeln!(w, "<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">");
    }
    let _ = writeln!(
        w,
        "<resource-agent name=\"{}\" version=\"{}\">",
        agent.name,
        env!("CARGO_PKG_VERSION")
    );
    let ver = if dialect == Dialect::Ocf11 {
        "1.1"
    } else {
        "1.0"
    };
    let _ = writeln!(w, "  <version>{ver}</version>");
    // Paragraphs stay apart (a blank line), as crm ra info and pcs resource describe show them.
    let _ = writeln!(
        w,
        "  <longdesc lang=\"en\">{}</longdesc>",
        esc(&super::paragraph_text(agent.longdesc))
    );
    let _ = writeln!(
        w,
        "  <shortdesc lang=\"en\">{}</shortdesc>",
        esc(agent.shortdesc)
    );
    let _ = writeln!(w, "  <parameters>");
    for p in agent.params {
        let mut attrs = format!("name=\"{}\" required=\"{}\"", p.name, u8::from(p.required));
        match dialect {
            Dialect::Ocf11 => {
                if let Some(g) = p.unique_group {
                    let _ = write!(attrs, " unique-group=\"{g}\"");
                }
                if p.reloadable {
                    attrs.push_str(" reloadable=\"1\"");
                }
            }
            Dialect::Ocf10 => {
                attrs.push_str(if p.unique_group.is_some() {
                    " unique=\"1\""
                } else {
                    " unique=\"0\""
                });
            }
        }
        let mut longdesc = p.longdesc.to_string();
        if let (Dialect::Ocf10, Type::Select(opts)) = (dialect, p.ty) {
            let _ = write!(longdesc, " One of: {}.", opts.join(", "));
        }
        let _ = writeln!(w, "    <parameter {attrs}>");
        let _ = writeln!(
            w,
            "      <longdesc lang=\"en\">{}</longdesc>",
            esc(&longdesc)
        );
        let _ = writeln!(
            w,
            "      <shortdesc lang=\"en\">{}</shortdesc>",
            esc(p.shortdesc)
        );
        let ty = match (dialect, p.ty) {
            (Dialect::Ocf10, Type::Select(_)) => "string",
            (_, t) => t.ocf_name(),
        };
        let default = p
            .default
            .map(|d| format!(" default=\"{}\"", esc(d)))
            .unwrap_or_default();
        match (dialect, p.ty) {
            (Dialect::Ocf11, Type::Select(opts)) => {
                let _ = writeln!(w, "      <content type=\"{ty}\"{default}>");
                for o in opts {
                    let _ = writeln!(w, "        <option value=\"{}\"/>", esc(o));
                }
                let _ = writeln!(w, "      </content>");
            }
            _ => {
                let _ = writeln!(w, "      <content type=\"{ty}\"{default}/>");
            }
        }
        let _ = writeln!(w, "    </parameter>");
    }
    let _ = writeln!(w, "  </parameters>");
    let _ = writeln!(w, "  <actions>");
    for a in agent.advertised() {
        // OCF 1.0 has no reload-agent.
        if a.action == Action::ReloadAgent && dialect == Dialect::Ocf10 {
            continue;
        }
        let mut attrs = format!("name=\"{}\"", a.action.word());
        for (k, v) in super::action_attrs(a) {
            let _ = write!(attrs, " {k}=\"{v}\"");
        }
        let _ = writeln!(w, "    <action {attrs}/>");
    }
    let _ = writeln!(w, "  </actions>");
    let _ = writeln!(w, "</resource-agent>");
    x
}

/// The parameter table shown by `cloudha <agent> --help`.
pub fn params_help(agent: &AgentDef) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Parameters (OCF: OCF_RESKEY_<name>; Clusterware: _CRS_<NAME> or <name>= in the resource's .conf file):"
    );
    for p in agent.params {
        let _ = writeln!(
            s,
            "\n  {} ({})  [_CRS_{}]",
            p.name,
            super::param_flags(p),
            p.crs_attribute()
        );
        let _ = writeln!(s, "      {}", p.shortdesc);
        for line in wrap(p.longdesc, 80) {
            let _ = writeln!(s, "      {line}");
        }
    }
    s
}
