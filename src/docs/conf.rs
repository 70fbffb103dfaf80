//! The commented `<agent>.conf` template and the Clusterware `crsctl add type -attr` value.

use std::fmt::Write as _;

use super::{OCF_DIR, VERSION, param_flags, wrap};
use crate::agents::AgentDef;

/// The attribute definitions of a Clusterware resource type carrying an agent's parameters,
/// for `crsctl add type ... -attr "..."`: required ones are REQUIRED, the others get their
/// declared default (empty when the agent computes it).
pub fn crs_type_attrs(a: &AgentDef) -> String {
    a.params
        .iter()
        .map(|p| {
            let mut s = format!("ATTRIBUTE={},TYPE=string", p.crs_attribute());
            if p.required {
                s.push_str(",FLAGS=REQUIRED");
            } else {
                let _ = write!(s, ",DEFAULT_VALUE={}", p.default.unwrap_or(""));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The commented `.conf` template of an agent.
pub fn conf_template(a: &AgentDef) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "# /etc/cloudha/<resource name>.conf for the cloudha {} agent ({}).\n\
         #\n\
         # Oracle Clusterware: a resource of the plain cluster_resource type whose ACTION_SCRIPT\n\
         # is {OCF_DIR}/{} reads its parameters from /etc/cloudha/<_CRS_NAME>.conf.\n\
         # One name=value per line, with the OCF parameter names; blank lines and # comments are\n\
         # ignored; values may be quoted. Resource attributes _CRS_<NAME> override the file.\n\
         # Generated from the parameter declarations of cloudha {VERSION}.",
        a.name, a.shortdesc, a.name
    );
    for p in a.params {
        let _ = writeln!(w, "\n# {} ({})", p.shortdesc, param_flags(p));
        for l in wrap(p.longdesc, 90) {
            let _ = writeln!(w, "#   {l}");
        }
        let _ = writeln!(w, "#{}={}", p.name, p.default.unwrap_or(""));
    }
    w
}
