//! All text derived from the agent declarations (`crate::agents::AGENTS`), in one place:
//! meta-data XML and `--help` ([`metadata`]), `.conf` templates and Clusterware type attributes
//! ([`conf`]), and the data the man pages and completions are rendered from: the environment
//! ([`ENVIRONMENT`]), the files ([`FILES`], [`POLICY_FILES`]) and the shared helpers (wrapping,
//! a parameter's type and flags). The rendering itself (clap_mangen, roff, clap_complete) lives
//! in `examples/gendoc/`, which `make packages` runs, so those crates never reach the binary.

use crate::params::{Param, Type};

pub mod conf;
pub mod metadata;

/// Where the packages install the OCF agent links (a macro too, so constant text can be built
/// from it).
macro_rules! ocf_dir {
    () => {
        "/usr/lib/ocf/resource.d/cloudha"
    };
}
pub const OCF_DIR: &str = ocf_dir!();
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the packages install the examples and policy files.
pub const EXAMPLES_DIR: &str = "/usr/share/doc/cloudha/examples";

/// One environment variable (or a group read together) and what cloudha does with it.
#[derive(Debug)]
pub struct EnvVar {
    pub names: &'static [&'static str],
    pub text: &'static str,
}

const fn var(names: &'static [&'static str], text: &'static str) -> EnvVar {
    EnvVar { names, text }
}

/// Every variable cloudha reads, for cloudha(8) ENVIRONMENT. Test builds also honour a few
/// lab-only overrides (`Env::test_hook`); release builds (the packaged ones) do not, so they
/// are not here.
pub const ENVIRONMENT: &[EnvVar] = &[
    var(
        &["OCF_RESKEY_<name>"],
        "A parameter of the agent (Pacemaker). A value that is not UTF-8 text is refused.",
    ),
    var(
        &["OCF_RESKEY_CRM_meta_timeout"],
        "The action's timeout in milliseconds (Pacemaker). Every step of the action ends before \
         it, less a margin of a tenth (at most 2 s) to report. A value that is not a positive \
         number gives the agent's declared timeout, with a warning; one over a day counts as a \
         day.",
    ),
    var(
        &["OCF_RESKEY_CRM_meta_interval"],
        "The monitor interval in milliseconds; 0 or unset makes the monitor a probe.",
    ),
    var(
        &["OCF_CHECK_LEVEL"],
        "Monitor and validate-all depth: 10 also asks the cloud and checks this host.",
    ),
    var(
        &["OCF_RESOURCE_INSTANCE"],
        "The resource name, used in log lines.",
    ),
    var(
        &["OCF_RA_VERSION_MAJOR", "OCF_RA_VERSION_MINOR"],
        "The OCF version of the caller; 1.1 gets the OCF 1.1 meta-data dialect.",
    ),
    var(
        &["OCF_EXIT_REASON_PREFIX"],
        "Replaces the ocf-exit-reason: prefix, as ocf-shellfuncs allows.",
    ),
    var(
        &["_CRS_NAME"],
        "Set by Oracle Clusterware: the resource name. Its presence selects the Clusterware \
         contract.",
    ),
    var(
        &["_CRS_<NAME>"],
        "A parameter given as an attribute of a Clusterware resource type.",
    ),
    var(
        &["_CRS_<ACTION>_TIMEOUT", "_CRS_SCRIPT_TIMEOUT"],
        "The action's timeout in seconds under Clusterware (START, STOP, CHECK, CLEAN), bounded \
         as OCF_RESKEY_CRM_meta_timeout is.",
    ),
    var(
        &["HA_debug"],
        "Set and not 0, no, false, off or n: debug lines are logged too, as ocf-shellfuncs' \
         ocf_log debug does, with the warnings and errors of the libraries cloudha uses. \
         Otherwise only cloudha's own messages are logged (the SDKs' informational lines can \
         carry credential identifiers).",
    ),
    var(
        &["HA_LOGFACILITY"],
        "A syslog facility (daemon, user, local0 ... local7, auth, authpriv, syslog, ...): \
         lines go to syslog (/dev/log, never waited for) instead of standard error, which \
         Pacemaker logs as well; a line syslog does not take goes to standard error. Run from \
         a terminal, lines go to the terminal only. Unset, empty or none: no syslog; an \
         unknown name: a warning, and standard error.",
    ),
    var(
        &["HA_LOGFILE"],
        "A file log lines are appended to (<date> <tag>:    LEVEL: message) instead of \
         standard error; pacemaker-execd sets it from PCMK_logfile.",
    ),
    var(
        &["HA_DEBUGLOG"],
        "A file every line, debug lines included, is appended to (<tag>:<tab><date>LEVEL: \
         message); with it set, debug lines stay off standard error. Written once when it is \
         the same file as HA_LOGFILE.",
    ),
    var(
        &["HA_DATEFMT"],
        "The strftime format of the date in HA_LOGFILE and HA_DEBUGLOG lines (default \
         \"%b %d %T \"), as date +FORMAT reads it.",
    ),
    var(
        &["HA_LOGTAG"],
        "Replaces the tag <agent>(<resource>)[<pid>] at the start of every line.",
    ),
    var(
        &["HA_VARLIB"],
        "The cluster's state directory (default /var/lib/heartbeat); action traces are \
         written under $HA_VARLIB/trace_ra.",
    ),
    var(
        &["OCF_TRACE_RA", "OCF_RESKEY_trace_ra"],
        "True (1, yes, true, on; the resource parameter trace_ra=1, or crm resource trace): \
         each action writes its events, debug lines included, timestamped, to a file of its \
         own, <resource>.<action>.<date> (date as YYYY-MM-DD.HH:MM:SS) in the directory \
         <trace dir>/<OCF_RESOURCE_TYPE>, where resource-agents writes its traces and crm \
         report collects them; mode 0640, cut at 4 MiB with a line saying so. On a terminal \
         the debug lines show there instead.",
    ),
    var(
        &["OCF_TRACE_FILE", "OCF_RESKEY_trace_file"],
        "The trace file instead: an absolute path, rewritten by each action, or a file \
         descriptor 3 to 9.",
    ),
    var(
        &["OCF_RESKEY_trace_dir"],
        "The trace directory instead of $HA_VARLIB/trace_ra (crm resource trace <rsc> <op> \
         <dir>).",
    ),
    var(
        &["OCF_RESOURCE_TYPE"],
        "The agent's name as the caller knows it, which names the trace directory (default: \
         the agent cloudha runs as).",
    ),
    var(
        &["CLOUDHA_CONFIG_DIR"],
        "Where Clusterware .conf files are looked for (default /etc/cloudha).",
    ),
    var(
        &["CLOUDHA_RUN_DIR"],
        "Where records and caches live (default /run/cloudha): a directory only root can \
         write, cleared at boot.",
    ),
    var(
        &["COROSYNC_MAIN_CONFIG_FILE"],
        "corosync's own variable: the corosync.conf that vxlan-fdb peers_from=corosync reads \
         (default /etc/corosync/corosync.conf).",
    ),
    var(
        &["CLOUDHA_METADATA_DISABLED", "AWS_EC2_METADATA_DISABLED"],
        "true (either variable, both clouds): never contact the instance metadata service; set \
         AWS_EC2_METADATA_DISABLED too so that the AWS SDK's own credential chain skips it. \
         Actions that need metadata then fail with the reason (exit 5).",
    ),
    var(
        &["AWS_EC2_METADATA_SERVICE_ENDPOINT"],
        "The EC2 instance metadata endpoint (default http://169.254.169.254), for cloudha's \
         own metadata reads and the AWS SDK's.",
    ),
    var(
        &["AWS_REGION", "AWS_DEFAULT_REGION"],
        "The EC2 region when the region parameter is not set (AWS_REGION first); without \
         either, the region comes from instance metadata.",
    ),
    var(
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ],
        "The AWS SDK's standard credential chain (cloud=aws), before the instance profile; \
         the profile parameter overrides AWS_PROFILE and role_arn assumes a role on top. \
         Without HOME (Pacemaker gives none) the config files default to those of the \
         account's home directory. Pacemaker does not pass a shell's environment to agents: \
         the profile, region and role_arn parameters are the usual way.",
    ),
    var(
        &[
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_EC2",
            "AWS_ENDPOINT_URL_STS",
        ],
        "The AWS SDK's endpoint overrides; the endpoint_url parameter, when set, wins for EC2.",
    ),
    var(
        &["HOME"],
        "Where ~/.aws and ~/.oci are looked for; without it (Pacemaker gives none), the home \
         directory of the account cloudha runs as.",
    ),
    var(
        &[
            "HTTPS_PROXY",
            "ALL_PROXY",
            "HTTP_PROXY",
            "NO_PROXY",
            "https_proxy",
            "all_proxy",
            "http_proxy",
            "no_proxy",
        ],
        "A proxy for the cloud API (both clouds) when the proxy parameter is not set: the first \
         non-empty of HTTPS_PROXY, https_proxy, ALL_PROXY, all_proxy, HTTP_PROXY, http_proxy, \
         with the hosts of NO_PROXY (or no_proxy) reached directly. Pacemaker and Clusterware \
         do not pass a shell's environment to agents, so the proxy and no_proxy parameters are \
         the usual way. Instance metadata never goes through a proxy.",
    ),
];

/// The files cloudha(8) lists: (path, what it is). `<x>` marks a part to replace.
pub const FILES: &[(&str, &str)] = &[
    (
        concat!(ocf_dir!(), "/<agent>"),
        "Links to /usr/sbin/cloudha, one per agent; the path to give as ACTION_SCRIPT.",
    ),
    (
        "/etc/cloudha/<resource>.conf",
        "Parameters of an Oracle Clusterware resource, found by its name (_CRS_NAME).",
    ),
    (
        "/run/cloudha/",
        "Run-time state, such as whether a Clusterware resource was last seen online.",
    ),
    (
        "/usr/share/doc/cloudha/examples/",
        "pcs and crsctl registration examples, a .conf template for each agent, and the \
         IAM and OCI policies below.",
    ),
];

/// A least-privilege policy shipped in [`EXAMPLES_DIR`], and the man pages that name it (by
/// agent name; `fence_cloudha` for the fence agent). cloudha(8) lists them all.
#[derive(Debug)]
pub struct PolicyFile {
    pub file: &'static str,
    pub text: &'static str,
    pub pages: &'static [&'static str],
}

pub const POLICY_FILES: &[PolicyFile] = &[
    PolicyFile {
        file: "iam-policy-vip.json",
        text: "The least-privilege IAM policy vip and cloud-ready need with cloud=aws.",
        pages: &["vip", "cloud-ready"],
    },
    PolicyFile {
        file: "oci-policy-vip.txt",
        text: "The OCI policy statements vip and cloud-ready need with cloud=oci.",
        pages: &["vip", "cloud-ready"],
    },
    PolicyFile {
        file: "iam-policy-route-table.json",
        text: "The least-privilege IAM policy route-table needs.",
        pages: &["route-table"],
    },
    PolicyFile {
        file: "iam-policy-fence.json",
        text: "The least-privilege IAM policy fence_cloudha needs with cloud=aws.",
        pages: &["fence_cloudha"],
    },
    PolicyFile {
        file: "oci-policy-fence.txt",
        text: "The OCI policy statements fence_cloudha needs with cloud=oci.",
        pages: &["fence_cloudha"],
    },
];

/// The policy files a page names (an agent's name, or `fence_cloudha`).
pub fn policy_files(page: &str) -> impl Iterator<Item = &'static PolicyFile> + use<'_> {
    POLICY_FILES.iter().filter(move |f| f.pages.contains(&page))
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

/// The paragraphs of a long description (separated by blank lines), each as one line.
pub fn paragraphs(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
}

/// A long description as text: its paragraphs apart by a blank line, each on one line (the
/// meta-data's <longdesc> and the man pages' DESCRIPTION).
pub fn paragraph_text(text: &str) -> String {
    paragraphs(text).collect::<Vec<_>>().join("\n\n")
}

/// A long description for a terminal: each paragraph wrapped at `width`, a blank line between.
pub fn wrap_paragraphs(text: &str, width: usize) -> String {
    paragraphs(text)
        .map(|p| wrap(&p, width).join("\n"))
        .collect::<Vec<_>>()
        .join("\n\n")
}
