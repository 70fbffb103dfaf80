//! The man pages. clap_mangen renders what the clap CLI knows (title, NAME, SYNOPSIS,
//! DESCRIPTION, OPTIONS of cloudha(8); title, NAME, DESCRIPTION of the agent pages); the `roff`
//! crate builds the OCF sections it cannot know (parameters, actions, examples, Clusterware
//! names, environment, files), from the declarations and the tables of `cloudha::docs`.

use clap_mangen::Man;
use roff::{Inline, Roff, bold, italic, roman};

use cloudha::agents::{AGENTS, AgentDef};
use cloudha::docs::{
    ENVIRONMENT, EXAMPLES_DIR, FILES, OCF_DIR, POLICY_FILES, PolicyFile, VERSION, action_attrs,
    conf::crs_type_attrs, paragraph_text, paragraphs, param_flags, policy_files,
};
use cloudha::fence;
use cloudha::params::{Param, Type};

/// A page: clap_mangen's sections and ours, with the roff crate's apostrophe preamble once.
struct Page(String);

impl Page {
    fn new() -> Self {
        Page(Roff::new().render())
    }
    /// Appends a clap_mangen section (each render_* call writes the preamble again).
    fn clap(&mut self, f: impl Fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>, m: &Man) {
        let mut buf = Vec::new();
        f(m, &mut buf).expect("writing to a Vec");
        self.push(String::from_utf8(buf).expect("UTF-8 in, UTF-8 out"));
    }
    fn roff(&mut self, r: &Roff) {
        self.push(r.render());
    }
    fn push(&mut self, text: String) {
        let preamble = Roff::new().render();
        self.0
            .push_str(text.strip_prefix(&preamble).unwrap_or(&text));
    }
}

/// The title (and no hyphenation, left-adjusted: long parameter names and paths).
fn title(p: &mut Page, m: &Man) {
    p.clap(Man::render_title, m);
    p.roff(Roff::new().control("nh", []).control("ad", ["l"]));
}

fn para(r: &mut Roff, text: &str) {
    r.control("PP", []).text([roman(text)]);
}

/// An indented block of literal lines.
fn example<S: AsRef<str>>(r: &mut Roff, lines: &[S]) {
    r.control("PP", []).control("RS", ["4"]).control("nf", []);
    for l in lines {
        r.text([roman(l.as_ref())]);
    }
    r.control("fi", []).control("RE", []);
}

/// `text` in bold, with each `<placeholder>` in italics.
fn literal(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        if open > 0 {
            out.push(bold(&rest[..open]));
        }
        // Brackets too: without fonts (a pager, MANPAGER=cat) the italics are lost.
        out.push(roman("<"));
        out.push(italic(&rest[open + 1..open + close]));
        out.push(roman(">"));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(bold(rest));
    }
    out
}

/// A tagged paragraph: `head` on its own line, `body` indented below.
fn item(r: &mut Roff, head: Vec<Inline>, body: &str) {
    r.control("TP", []).text(head).text([roman(body)]);
}

fn see_also(r: &mut Roff, pages: &[&str]) {
    r.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, p) in pages.iter().enumerate() {
        let (name, section) = p.split_once('(').expect("name(section)");
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name));
        line.push(roman(format!("({section}")));
    }
    r.text(line);
}

fn policy_item(r: &mut Roff, f: &PolicyFile) {
    item(r, literal(&format!("{EXAMPLES_DIR}/{}", f.file)), f.text);
}

/// `name=VALUE` words for an example: the required parameters, with a placeholder.
fn required_words(a: &AgentDef) -> Vec<String> {
    a.params
        .iter()
        .filter(|p| p.required)
        .map(|p| format!("{}=<{}>", p.name, p.name))
        .collect()
}

/// A parameter in a SYNOPSIS: the words a select or boolean takes, else its type.
fn synopsis_word(p: &Param) -> Vec<Inline> {
    let value = match p.ty {
        Type::Select(words) => roman(words.join("|")),
        Type::Boolean => roman("true|false"),
        t => italic(t.ocf_name()),
    };
    let word = [bold(format!("{}=", p.name)), value];
    if p.required {
        word.into()
    } else {
        [vec![roman("[")], word.into(), vec![roman("]")]].concat()
    }
}

const DESCRIPTION: &str = "cloudha is one static binary that carries several resource agents. A \
    cluster manager calls it through a link named after the agent (the name it was called by \
    picks the agent), with the action as the only argument: Pacemaker through the OCF resource \
    agent API 1.1 (the agent is ocf:cloudha:<agent>), Oracle Clusterware as the ACTION_SCRIPT \
    of a resource.\n\n\
    People can call it as cloudha <agent> <action> with parameters given as name=value words, \
    which override the environment.";

/// clap_mangen's page of `cmd`, with the title line every page of ours carries.
fn man(title: &str, section: &str, manual: &str, cmd: clap::Command, date: &str) -> Man {
    Man::new(cmd)
        .title(title)
        .section(section)
        .date(date)
        .source(format!("cloudha {VERSION}"))
        .manual(manual)
}

pub fn cloudha(date: &str) -> String {
    let cmd = cloudha::cli()
        .override_usage(format!(
            "cloudha <agent> <action> [name=value ...]\n{OCF_DIR}/<agent> <action>\n\
             cloudha --help | --version"
        ))
        .long_about(DESCRIPTION);
    let m = man("CLOUDHA", "8", "System Administration", cmd, date);
    let mut p = Page::new();
    title(&mut p, &m);
    p.clap(Man::render_name_section, &m);
    p.clap(Man::render_synopsis_section, &m);
    p.clap(Man::render_description_section, &m);
    p.clap(Man::render_options_section, &m);

    let mut r = Roff::new();
    r.control("SH", ["AGENTS"]);
    for a in AGENTS {
        r.control("TP", []).text([bold(a.name)]).text([
            roman(format!("{}. See ", a.shortdesc.trim_end_matches('.'))),
            bold(format!("ocf_cloudha_{}", a.name)),
            roman("(7)."),
            Inline::LineBreak,
            roman(format!("Path: {OCF_DIR}/{}", a.name)),
        ]);
    }
    r.control("SH", ["ACTIONS"]);
    para(
        &mut r,
        "Pacemaker (OCF): start, stop, monitor (status is an alias), meta-data, validate-all, \
         reload-agent. OCF_CHECK_LEVEL 10 makes validate-all look at this host as well.",
    );
    para(
        &mut r,
        "Oracle Clusterware: start, stop, check, clean (a forced stop), abort; any other action \
         succeeds without doing anything. Clusterware is recognised by _CRS_NAME in the \
         environment.",
    );
    r.control("SH", ["PARAMETERS"]);
    para(
        &mut r,
        "Each agent declares its parameters; ocf_cloudha_<agent>(7) lists them. They are read \
         from, in increasing precedence: OCF_RESKEY_<name> (Pacemaker); or, under Clusterware, \
         the file /etc/cloudha/<_CRS_NAME>.conf and then the resource attributes _CRS_<NAME> \
         (attributes of a custom resource type); and finally name=value words on the command \
         line.",
    );
    para(
        &mut r,
        "The .conf file holds one name=value line per parameter, with the OCF parameter names; \
         blank lines and lines starting with # are ignored and values may be quoted. It is what \
         a resource of the plain cluster_resource type, which has no custom attributes, uses.",
    );
    r.control("SH", ["EXIT STATUS"]);
    para(
        &mut r,
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
        &mut r,
        "For Oracle Clusterware: 0 success and 1 failure for start, stop and clean; check \
         returns 0 ONLINE, 1 UNPLANNED_OFFLINE, 2 PLANNED_OFFLINE, 3 UNKNOWN, 4 PARTIAL (the \
         degraded case above) or 5 FAILED. A .conf file that cannot be used makes check answer \
         UNKNOWN, stop and clean succeed and start fail naming the file and line. Messages \
         prefixed CRS_WARNING: or CRS_ERROR: reach the crsctl client.",
    );
    para(
        &mut r,
        "Called as cloudha with an unknown agent, the status is 5 (not installed); with a \
         command line that cannot be parsed, 2.",
    );
    r.control("SH", ["ENVIRONMENT"]);
    for v in ENVIRONMENT {
        let mut head = Vec::new();
        for (i, n) in v.names.iter().enumerate() {
            if i > 0 {
                head.push(roman(", "));
            }
            head.extend(literal(n));
        }
        item(&mut r, head, v.text);
    }
    r.control("SH", ["FILES"]);
    for (path, text) in FILES {
        item(&mut r, literal(path), text);
    }
    for f in POLICY_FILES {
        policy_item(&mut r, f);
    }
    r.control("SH", ["EXAMPLES"]);
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
    example(&mut r, &lines);
    let mut see: Vec<String> = AGENTS
        .iter()
        .map(|a| format!("ocf_cloudha_{}(7)", a.name))
        .collect();
    see.extend(
        [
            "fence_cloudha(8)",
            "pcs(8)",
            "crm_resource(8)",
            "ocf-tester(8)",
            "crsctl(1)",
        ]
        .map(String::from),
    );
    see_also(&mut r, &see.iter().map(String::as_str).collect::<Vec<_>>());
    p.roff(&r);
    p.0
}

pub fn agent(a: &AgentDef, date: &str) -> String {
    let page = format!("ocf_cloudha_{}", a.name);
    let cmd = cloudha::agent_command(a)
        .display_name(&page)
        .long_about(paragraph_text(a.longdesc));
    let m = man(&page.to_uppercase(), "7", "OCF resource agents", cmd, date);
    let mut p = Page::new();
    title(&mut p, &m);
    p.clap(Man::render_name_section, &m);

    let mut r = Roff::new();
    r.control("SH", ["SYNOPSIS"]);
    let mut line = vec![
        bold("pcs resource create"),
        roman(" "),
        italic("resource_id"),
        roman(" "),
        bold(format!("ocf:cloudha:{}", a.name)),
    ];
    for prm in a.params {
        line.push(roman(" "));
        line.extend(synopsis_word(prm));
    }
    r.text(line).control("br", []).text([
        bold(format!("{OCF_DIR}/{}", a.name)),
        roman(" "),
        italic("action"),
    ]);
    p.roff(&r);
    p.clap(Man::render_description_section, &m);

    let mut r = Roff::new();
    r.control("SH", ["SUPPORTED PARAMETERS"]);
    for prm in a.params {
        item(&mut r, vec![bold(prm.name)], prm.shortdesc);
        r.control("IP", []).text([roman(prm.longdesc)]);
        r.control("IP", []).text([roman(format!(
            "({}; Clusterware attribute _CRS_{})",
            param_flags(prm),
            prm.crs_attribute()
        ))]);
    }
    r.control("SH", ["SUPPORTED ACTIONS"]);
    para(
        &mut r,
        "The actions as advertised in the meta-data, with their default timeouts:",
    );
    r.control("RS", ["4"]);
    for d in a.advertised() {
        let mut s = d.action.word().to_string();
        for (k, v) in action_attrs(d) {
            s.push_str(&format!(" {k}={v}"));
        }
        r.control("IP", ["\\(bu", "2"]).text([roman(s)]);
    }
    r.control("RE", []);
    para(
        &mut r,
        &format!(
            "Oracle Clusterware calls {OCF_DIR}/{} with start, stop, check, clean or abort.",
            a.name
        ),
    );
    r.control("SH", ["EXAMPLE PACEMAKER CONFIGURATION"]);
    let req = required_words(a).join(" ");
    example(
        &mut r,
        &[format!(
            "pcs resource create my-{} ocf:cloudha:{} {req} op monitor interval=10s{}",
            a.name,
            a.name,
            if a.clone { " clone" } else { "" }
        )],
    );
    para(&mut r, "Without a cluster, to try a configuration:");
    example(
        &mut r,
        &[
            format!(
                "crm_resource --validate --class ocf --provider cloudha --agent {} --option {}",
                a.name,
                required_words(a).join(" --option ")
            ),
            format!("cloudha {} validate-all {req}", a.name),
        ],
    );
    r.control("SH", ["EXAMPLE ORACLE CLUSTERWARE CONFIGURATION"]);
    para(
        &mut r,
        &format!(
            "With the plain cluster_resource type, the parameters come from \
             /etc/cloudha/<resource name>.conf (see {EXAMPLES_DIR}/{}.conf):",
            a.name
        ),
    );
    example(
        &mut r,
        &[format!(
            "crsctl add resource my-{} -type cluster_resource -attr \"ACTION_SCRIPT={OCF_DIR}/{},CHECK_INTERVAL=10\"",
            a.name, a.name
        )],
    );
    para(
        &mut r,
        "With a custom type, each parameter is a resource attribute of the same name in \
         capitals (exported to the agent as _CRS_<NAME>); an empty value means the agent's \
         own default:",
    );
    let required: Vec<String> = a
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| format!("{}=<{}>", p.crs_attribute(), p.name))
        .collect();
    example(
        &mut r,
        &[
            format!(
                "crsctl add type cloudha.{}.type -basetype cluster_resource -attr \"{}\"",
                a.name,
                crs_type_attrs(a)
            ),
            format!(
                "crsctl add resource my-{0} -type cloudha.{0}.type -attr \"ACTION_SCRIPT={OCF_DIR}/{0},CHECK_INTERVAL=10,{1}\"",
                a.name,
                required.join(",")
            ),
        ],
    );
    if !a.examples.is_empty() {
        r.control("SH", ["MORE EXAMPLES"]);
        for e in a.examples {
            para(&mut r, e.intro);
            example(&mut r, e.lines);
        }
    }
    r.control("SH", ["ENVIRONMENT"]);
    r.control("PP", []).text([
        roman(
            "Parameters come from OCF_RESKEY_<name> (Pacemaker), or _CRS_<NAME> and \
             /etc/cloudha/<resource>.conf (Clusterware). Logging (HA_LOGFACILITY, HA_LOGFILE, \
             HA_DEBUGLOG, HA_debug), tracing (trace_ra=1), proxies, credentials and every other \
             variable the agents read: see ",
        ),
        bold("cloudha"),
        roman("(8)."),
    ]);
    if policy_files(a.name).next().is_some() {
        r.control("SH", ["FILES"]);
        for f in policy_files(a.name) {
            policy_item(&mut r, f);
        }
    }
    see_also(
        &mut r,
        &["cloudha(8)", "pcs(8)", "crm_resource(8)", "ocf-tester(8)"],
    );
    p.roff(&r);
    p.0
}

/// fence_cloudha(8), from the fence agent's declarations (its options are not clap's).
pub fn fence(date: &str) -> String {
    let mut r = Roff::new();
    r.control(
        "TH",
        [
            &fence::NAME.to_uppercase(),
            "8",
            date,
            &format!("cloudha {VERSION}"),
            "Fence agents",
        ],
    )
    .control("nh", [])
    .control("ad", ["l"]);
    r.control("SH", ["NAME"])
        .text([roman(format!("{} - {}", fence::NAME, fence::SHORTDESC))]);
    r.control("SH", ["SYNOPSIS"])
        .text([
            bold(fence::NAME),
            roman(" ["),
            italic("options"),
            roman("]"),
        ])
        .control("br", [])
        .text([bold(fence::NAME), roman(" < "), italic("name=value lines")]);
    r.control("SH", ["DESCRIPTION"]);
    for text in paragraphs(fence::LONGDESC) {
        para(&mut r, &text);
    }
    para(
        &mut r,
        "Without command-line options the options are read from standard input as name=value \
         lines, the way Pacemaker's fencer passes them: lines starting with # are comments, \
         the last value of a name wins, names that are not options are ignored.",
    );
    r.control("SH", ["OPTIONS"]);
    for prm in fence::PARAMS {
        let mut body = prm.longdesc.to_string();
        if let Some(d) = prm.default {
            body.push_str(&format!(" Default: {d}."));
        }
        item(&mut r, vec![bold(fence::getopt(prm))], &body);
    }
    r.control("SH", ["EXIT STATUS"]);
    para(
        &mut r,
        "0: done (status: the instance is running). 1: failed, or the state could not be \
         confirmed within power_timeout. 2: status: the instance is stopped.",
    );
    r.control("SH", ["EXAMPLE"]);
    example(
        &mut r,
        &[
            "pcs stonith create fence-node1 fence_cloudha cloud=aws pcmk_host_list=node1 delay=10"
                .to_string(),
            "pcs constraint location fence-node1 avoids node1=INFINITY".to_string(),
            format!(
                "{} -o status -n i-0123456789abcdef0 --cloud=aws",
                fence::NAME
            ),
        ],
    );
    r.control("SH", ["FILES"]);
    for f in policy_files(fence::NAME) {
        policy_item(&mut r, f);
    }
    see_also(&mut r, &["cloudha(8)", "stonith_admin(8)"]);
    let mut p = Page::new();
    p.roff(&r);
    p.0
}
