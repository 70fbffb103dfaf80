//! The man pages: `cloudha(8)` and `ocf_cloudha_<agent>(7)`, with the roff helpers they use.

use std::fmt::Write as _;

use super::conf::crs_type_attrs;
use super::{OCF_DIR, VERSION, ocf_dir, param_flags};
use crate::agents::{AGENTS, AgentDef};

/// YYYY-MM-DD of a Unix time (UTC), without a date crate.
pub(crate) fn iso_date(secs: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------------------------
// roff

/// Text for a roff body line: backslashes escaped, and a leading `.` or `'` made literal.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn th(w: &mut String, name: &str, section: u8, date: &str, manual: &str) {
    let _ = writeln!(
        w,
        ".TH \"{}\" \"{section}\" \"{date}\" \"cloudha {VERSION}\" \"{manual}\"",
        name.to_uppercase()
    );
    let _ = writeln!(w, ".nh\n.ad l");
}

fn sh(w: &mut String, title: &str) {
    let _ = writeln!(w, ".SH \"{title}\"");
}

fn para(w: &mut String, text: &str) {
    let _ = writeln!(w, ".PP\n{}", roff(text));
}

fn example(w: &mut String, lines: &[String]) {
    let _ = writeln!(w, ".PP\n.RS 4\n.nf");
    for l in lines {
        let _ = writeln!(w, "{}", roff(l));
    }
    let _ = writeln!(w, ".fi\n.RE");
}

/// `name=VALUE` words for an example: required parameters, with a placeholder.
fn required_words(a: &AgentDef) -> Vec<String> {
    a.params
        .iter()
        .filter(|p| p.required)
        .map(|p| format!("{}=<{}>", p.name, p.name))
        .collect()
}

/// The files cloudha(8) lists: (path as roff, what it is).
const FILES: &[(&str, &str)] = &[
    (
        concat!(ocf_dir!(), "/\\fIagent\\fR"),
        "Links to /usr/sbin/cloudha, one per agent; the path to give as ACTION_SCRIPT.",
    ),
    (
        "/etc/cloudha/\\fIresource\\fB.conf\\fR",
        "Parameters of an Oracle Clusterware resource, found by its name (_CRS_NAME).",
    ),
    (
        "/run/cloudha/",
        "Run-time state, such as whether a Clusterware resource was last seen online.",
    ),
    (
        "/usr/share/doc/cloudha/examples/",
        "pcs and crsctl registration examples and a .conf template for each agent.",
    ),
];

/// The environment an admin can set or a caller sets, for cloudha(8). Test builds also honour
/// a few lab-only overrides; release builds (the packaged ones) do not, so they are not here.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "OCF_RESKEY_<name>",
        "A parameter of the agent (Pacemaker). A value that is not UTF-8 text is refused.",
    ),
    (
        "OCF_RESKEY_CRM_meta_timeout",
        "The action's timeout in milliseconds (Pacemaker). Every step of the action ends \
         before it, less a margin of a tenth (at most 2 s) to report. A value that is not a \
         positive number gives the agent's declared timeout, with a warning; one over a day \
         counts as a day.",
    ),
    (
        "OCF_RESKEY_CRM_meta_interval",
        "The monitor interval in milliseconds; 0 or unset makes the monitor a probe.",
    ),
    (
        "OCF_CHECK_LEVEL",
        "Monitor and validate-all depth: 10 also asks the cloud and checks this host.",
    ),
    (
        "OCF_RESOURCE_INSTANCE",
        "The resource name, used in log lines.",
    ),
    (
        "OCF_RA_VERSION_MAJOR, OCF_RA_VERSION_MINOR",
        "The OCF version of the caller; 1.1 gets the OCF 1.1 meta-data dialect.",
    ),
    (
        "OCF_EXIT_REASON_PREFIX",
        "Replaces the ocf-exit-reason: prefix, as ocf-shellfuncs allows.",
    ),
    (
        "_CRS_NAME",
        "Set by Oracle Clusterware: the resource name. Its presence selects the Clusterware \
         contract.",
    ),
    (
        "_CRS_<NAME>",
        "A parameter given as an attribute of a Clusterware resource type.",
    ),
    (
        "_CRS_<ACTION>_TIMEOUT, _CRS_SCRIPT_TIMEOUT",
        "The action's timeout in seconds under Clusterware (START, STOP, CHECK, CLEAN), bounded \
         as OCF_RESKEY_CRM_meta_timeout is.",
    ),
    (
        "HA_debug, OCF_TRACE_RA",
        "HA_debug=1 or OCF_TRACE_RA set: debug lines, and warnings of the libraries cloudha \
         uses. Without them only cloudha's own messages are logged (the SDKs' informational \
         lines can carry credential identifiers).",
    ),
    (
        "HA_LOGFACILITY",
        "A syslog facility (daemon, local0 ... local7, ...): log lines also go to syslog.",
    ),
    (
        "CLOUDHA_CONFIG_DIR",
        "Where Clusterware .conf files are looked for (default /etc/cloudha).",
    ),
    (
        "CLOUDHA_RUN_DIR",
        "Where records and caches live (default /run/cloudha): a directory only root can \
         write, cleared at boot.",
    ),
    (
        "COROSYNC_MAIN_CONFIG_FILE",
        "corosync's own variable: the corosync.conf that vxlan-fdb peers_from=corosync reads \
         (default /etc/corosync/corosync.conf).",
    ),
    (
        "CLOUDHA_METADATA_DISABLED, AWS_EC2_METADATA_DISABLED",
        "true: never contact the instance metadata service (either variable, both clouds; \
         set AWS_EC2_METADATA_DISABLED too so that the AWS SDK's own credential chain skips \
         it); actions that need metadata fail with the reason (exit 5).",
    ),
    (
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, \
         AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_REGION",
        "The AWS SDK's standard credential and region chain (cloud=aws). Pacemaker does not \
         pass a shell's environment to agents: the profile, region and role_arn parameters \
         are the usual way.",
    ),
    (
        "HTTPS_PROXY, ALL_PROXY, HTTP_PROXY, NO_PROXY",
        "A proxy for the cloud API (both clouds) when the proxy parameter is not set, in this \
         order; Pacemaker and Clusterware do not pass a shell's environment to agents, so the \
         proxy and no_proxy parameters are the usual way. Instance metadata never goes \
         through a proxy.",
    ),
];

pub fn man_cloudha(date: &str) -> String {
    let mut w = String::new();
    th(&mut w, "cloudha", 8, date, "System Administration");
    sh(&mut w, "NAME");
    let _ = writeln!(
        w,
        "cloudha \\- cloud\\-aware high\\-availability resource agents for Pacemaker and Oracle Clusterware"
    );
    sh(&mut w, "SYNOPSIS");
    let _ = writeln!(
        w,
        ".B {OCF_DIR}/\\fIagent\\fB \\fIaction\\fR\n.br\n.B cloudha \\fIagent\\fB \\fIaction\\fR [\\fIname\\fB=\\fIvalue\\fR ...]\n.br\n.B cloudha\n\\-\\-help | \\-\\-version"
    );
    sh(&mut w, "DESCRIPTION");
    para(
        &mut w,
        "cloudha is one static binary that carries several resource agents. A cluster manager \
         calls it through a link named after the agent (the name it was called by picks the \
         agent), with the action as the only argument: Pacemaker through the OCF resource agent \
         API 1.1 (the agent is ocf:cloudha:<agent>), Oracle Clusterware as the ACTION_SCRIPT of \
         a resource. People can call it as cloudha <agent> <action> with parameters given as \
         name=value words, which override the environment.",
    );
    sh(&mut w, "AGENTS");
    for a in AGENTS {
        let _ = writeln!(w, ".TP\n.B {}", a.name);
        let _ = writeln!(
            w,
            "{}. See \\fBocf_cloudha_{}\\fR(7).\n.br\nPath: {OCF_DIR}/{}",
            roff(a.shortdesc.trim_end_matches('.')),
            a.name,
            a.name
        );
    }
    sh(&mut w, "ACTIONS");
    para(
        &mut w,
        "Pacemaker (OCF): start, stop, monitor (status is an alias), meta-data, validate-all, \
         reload-agent. OCF_CHECK_LEVEL 10 makes validate-all look at this host as well.",
    );
    para(
        &mut w,
        "Oracle Clusterware: start, stop, check, clean (a forced stop), abort; any other action \
         succeeds without doing anything. Clusterware is recognised by _CRS_NAME in the \
         environment.",
    );
    sh(&mut w, "PARAMETERS");
    para(
        &mut w,
        "Each agent declares its parameters; ocf_cloudha_<agent>(7) lists them. They are read \
         from, in increasing precedence: OCF_RESKEY_<name> (Pacemaker); or, under Clusterware, \
         the file /etc/cloudha/<_CRS_NAME>.conf and then the resource attributes \
         _CRS_<NAME> (attributes of a custom resource type); and finally name=value words on \
         the command line.",
    );
    para(
        &mut w,
        "The .conf file holds one name=value line per parameter, with the OCF parameter names; \
         blank lines and lines starting with # are ignored and values may be quoted. It is what \
         a resource of the plain cluster_resource type, which has no custom attributes, uses.",
    );
    sh(&mut w, "EXIT STATUS");
    para(
        &mut w,
        "For Pacemaker, the OCF codes: 0 success, 1 generic (transient) error, 2 invalid on \
         this host, 3 unimplemented action, 4 insufficient privileges, 5 not installed on this \
         host, 6 not configured (invalid everywhere), 7 not running, 190 running but degraded \
         (a monitor whose data path is healthy while the cloud API refuses what the next \
         failover needs, such as an expired credential or a missing permission; Pacemaker \
         counts it as success and shows the reason). One line prefixed with ocf-exit-reason: \
         on standard error carries the reason; values from the configuration are quoted in it \
         and cut to 64 characters.",
    );
    para(
        &mut w,
        "For Oracle Clusterware: 0 success and 1 failure for start, stop and clean; check \
         returns 0 ONLINE, 1 UNPLANNED_OFFLINE, 2 PLANNED_OFFLINE, 3 UNKNOWN, 4 PARTIAL (the \
         degraded case above) or 5 FAILED. A .conf file that cannot be used makes check answer \
         UNKNOWN, stop and clean succeed and start fail naming the file and line. Messages \
         prefixed CRS_WARNING: or CRS_ERROR: reach the crsctl client.",
    );
    para(
        &mut w,
        "Called as cloudha with an unknown agent, the status is 5 (not installed); with a \
         command line that cannot be parsed, 2.",
    );
    sh(&mut w, "ENVIRONMENT");
    for (var, text) in ENVIRONMENT {
        let _ = writeln!(w, ".TP\n.B {}\n{}", roff(var), roff(text));
    }
    sh(&mut w, "FILES");
    for (path, text) in FILES {
        let _ = writeln!(w, ".TP\n.B {path}\n{text}");
    }
    sh(&mut w, "EXAMPLES");
    let mut lines = Vec::new();
    for a in AGENTS {
        let req = required_words(a).join(" ");
        lines.push(format!("cloudha {} meta-data", a.name));
        lines.push(format!("cloudha {} validate-all {req}", a.name));
        lines.push(format!(
            "pcs resource create my-{} ocf:cloudha:{} {req}",
            a.name, a.name
        ));
    }
    example(&mut w, &lines);
    sh(&mut w, "SEE ALSO");
    let mut see: Vec<String> = AGENTS
        .iter()
        .map(|a| format!("\\fBocf_cloudha_{}\\fR(7)", a.name))
        .collect();
    see.extend(
        ["pcs(8)", "crm_resource(8)", "ocf-tester(8)", "crsctl(1)"]
            .iter()
            .map(|s| {
                let (n, sec) = s.split_once('(').expect("name(section)");
                format!("\\fB{n}\\fR({sec}")
            }),
    );
    let _ = writeln!(w, "{}", see.join(", "));
    w
}

pub fn man_agent(a: &AgentDef, date: &str) -> String {
    let page = format!("ocf_cloudha_{}", a.name);
    let mut w = String::new();
    th(&mut w, &page, 7, date, "OCF resource agents");
    sh(&mut w, "NAME");
    let _ = writeln!(w, "ocf_cloudha_{} \\- {}", a.name, roff(a.shortdesc));
    sh(&mut w, "SYNOPSIS");
    let words: Vec<String> = a
        .params
        .iter()
        .map(|p| {
            let v = format!("{}=\\fI{}\\fR", p.name, p.ty.ocf_name());
            if p.required { v } else { format!("[{v}]") }
        })
        .collect();
    let _ = writeln!(
        w,
        "\\fBpcs resource create\\fR \\fIresource_id\\fR \\fBocf:cloudha:{}\\fR {}",
        a.name,
        words.join(" ")
    );
    let _ = writeln!(w, ".br\n{OCF_DIR}/{} \\fIaction\\fR", a.name);
    sh(&mut w, "DESCRIPTION");
    para(&mut w, a.longdesc);
    sh(&mut w, "SUPPORTED PARAMETERS");
    for p in a.params {
        let _ = writeln!(w, ".TP\n\\fB{}\\fR", p.name);
        let _ = writeln!(w, "{}", roff(p.shortdesc));
        let _ = writeln!(w, ".IP\n{}", roff(p.longdesc));
        let _ = writeln!(
            w,
            ".IP\n({}; Clusterware attribute _CRS_{})",
            roff(&param_flags(p)),
            p.crs_attribute()
        );
    }
    sh(&mut w, "SUPPORTED ACTIONS");
    para(
        &mut w,
        "The actions as advertised in the meta-data, with their default timeouts:",
    );
    let _ = writeln!(w, ".RS 4");
    for d in a.advertised() {
        let mut s = d.action.word().to_string();
        for (k, v) in super::action_attrs(d) {
            let _ = write!(s, " {k}={v}");
        }
        let _ = writeln!(w, ".IP \\(bu 2\n{}", roff(&s));
    }
    let _ = writeln!(w, ".RE");
    para(
        &mut w,
        &format!(
            "Oracle Clusterware calls {OCF_DIR}/{} with start, stop, check, clean or abort.",
            a.name
        ),
    );
    sh(&mut w, "EXAMPLE PACEMAKER CONFIGURATION");
    let req = required_words(a).join(" ");
    example(
        &mut w,
        &[format!(
            "pcs resource create my-{} ocf:cloudha:{} {req} op monitor interval=10s{}",
            a.name,
            a.name,
            if a.clone { " clone" } else { "" }
        )],
    );
    para(&mut w, "Without a cluster, to try a configuration:");
    example(
        &mut w,
        &[
            format!(
                "crm_resource --validate --class ocf --provider cloudha --agent {} --option {}",
                a.name,
                required_words(a).join(" --option ")
            ),
            format!("cloudha {} validate-all {req}", a.name),
        ],
    );
    sh(&mut w, "EXAMPLE ORACLE CLUSTERWARE CONFIGURATION");
    para(
        &mut w,
        &format!(
            "With the plain cluster_resource type, the parameters come from \
             /etc/cloudha/<resource name>.conf (see /usr/share/doc/cloudha/examples/{}.conf):",
            a.name
        ),
    );
    example(
        &mut w,
        &[format!(
            "crsctl add resource my-{} -type cluster_resource -attr \"ACTION_SCRIPT={OCF_DIR}/{},CHECK_INTERVAL=10\"",
            a.name, a.name
        )],
    );
    para(
        &mut w,
        "With a custom type, each parameter is a resource attribute of the same name in \
         capitals (exported to the agent as _CRS_<NAME>); an empty value means the agent's \
         own default:",
    );
    let mut lines = vec![format!(
        "crsctl add type cloudha.{}.type -basetype cluster_resource -attr \"{}\"",
        a.name,
        crs_type_attrs(a)
    )];
    lines.push(format!(
        "crsctl add resource my-{} -type cloudha.{}.type -attr \"ACTION_SCRIPT={OCF_DIR}/{},CHECK_INTERVAL=10,{}\"",
        a.name,
        a.name,
        a.name,
        a.params
            .iter()
            .filter(|p| p.required)
            .map(|p| format!("{}=<{}>", p.crs_attribute(), p.name))
            .collect::<Vec<_>>()
            .join(",")
    ));
    example(&mut w, &lines);
    if !a.examples.is_empty() {
        sh(&mut w, "MORE EXAMPLES");
        for e in a.examples {
            para(&mut w, e.intro);
            example(
                &mut w,
                &e.lines.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            );
        }
    }
    sh(&mut w, "SEE ALSO");
    let _ = writeln!(
        w,
        "\\fBcloudha\\fR(8), \\fBpcs\\fR(8), \\fBcrm_resource\\fR(8), \\fBocf-tester\\fR(8)"
    );
    w
}

/// fence_cloudha(8), from the fence agent's declarations.
pub fn man_fence(date: &str) -> String {
    use crate::fence;
    let mut w = String::new();
    th(&mut w, fence::NAME, 8, date, "Fence agents");
    sh(&mut w, "NAME");
    let _ = writeln!(w, "{} \\- {}", fence::NAME, roff(fence::SHORTDESC));
    sh(&mut w, "SYNOPSIS");
    let _ = writeln!(
        w,
        "\\fB{0}\\fR [\\fIoptions\\fR]\n.br\n\\fB{0}\\fR < \\fIname=value lines\\fR",
        fence::NAME
    );
    sh(&mut w, "DESCRIPTION");
    para(&mut w, fence::LONGDESC);
    para(
        &mut w,
        "Without command-line options the options are read from standard input as name=value \
         lines, the way Pacemaker's fencer passes them: lines starting with # are comments, \
         the last value of a name wins, names that are not options are ignored.",
    );
    sh(&mut w, "OPTIONS");
    for p in fence::PARAMS {
        let _ = writeln!(w, ".TP\n\\fB{}\\fR", roff(&fence::getopt(p)));
        let _ = writeln!(w, "{}", roff(p.longdesc));
        if let Some(d) = p.default {
            let _ = writeln!(w, "Default: {}.", roff(d));
        }
    }
    sh(&mut w, "EXIT STATUS");
    para(
        &mut w,
        "0: done (status: the instance is running). 1: failed, or the state could not be \
         confirmed within power_timeout. 2: status: the instance is stopped.",
    );
    sh(&mut w, "EXAMPLE");
    example(
        &mut w,
        &[
            "pcs stonith create fence-node1 fence_cloudha cloud=aws pcmk_host_list=node1 delay=10"
                .into(),
            "pcs constraint location fence-node1 avoids node1=INFINITY".into(),
            format!(
                "{} -o status -n i-0123456789abcdef0 --cloud=aws",
                fence::NAME
            ),
        ],
    );
    sh(&mut w, "FILES");
    para(
        &mut w,
        "/usr/share/doc/cloudha/examples/iam-policy-fence.json: the least-privilege IAM policy. \
         /usr/share/doc/cloudha/examples/oci-policy-fence.txt: the OCI policy statements.",
    );
    sh(&mut w, "SEE ALSO");
    let _ = writeln!(w, "cloudha(8), stonith_admin(8)");
    w
}
