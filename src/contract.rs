//! The caller contracts in one place: how Pacemaker (OCF 1.1) and Oracle Clusterware
//! (ACTION_SCRIPT) call us, turned into (agent, action, parameters, deadline); and an
//! outcome turned into the exit code and messages that caller understands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::action::Action;
use crate::agents::{AgentDef, Ctx, Health, Paths};
use crate::cloud::Cloud;
use crate::cloud::routes::Routes;
use crate::error::{Error, Kind, Result, one_line, shown};
use crate::host::Host;
use crate::log::BESIDE_REASON;
use crate::metadata::{self, Dialect};
use crate::params::{Raw, Source, Values};

/// A snapshot of the environment (so tests can hand one in). Variables whose name or value is
/// not UTF-8 are kept by name in `invalid`, so that a parameter given that way is refused with
/// a reason instead of silently read as "not set".
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    invalid: BTreeSet<String>,
}

impl Env {
    pub fn from_process() -> Self {
        let mut env = Env::default();
        for (k, v) in std::env::vars_os() {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => {
                    env.vars.insert(k, v);
                }
                (Ok(k), Err(_)) => {
                    env.invalid.insert(k);
                }
                // A name that is not UTF-8 cannot be one of ours.
                (Err(_), _) => {}
            }
        }
        env
    }
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            invalid: BTreeSet::new(),
        }
    }
    /// Mark a variable as present with a value that is not UTF-8 (tests).
    pub fn with_invalid(mut self, name: &str) -> Self {
        self.vars.remove(name);
        self.invalid.insert(name.to_string());
        self
    }
    pub fn set(&mut self, k: &str, v: &str) {
        self.invalid.remove(k);
        self.vars.insert(k.to_string(), v.to_string());
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
    /// `k` read as a number; `default` when unset or not a number (the caller sets these,
    /// and a caller that sets them wrong is not the admin's fault).
    pub fn number<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        self.get(k)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }
    /// Whether `k` is set to a value that is not UTF-8.
    pub fn is_invalid(&self, k: &str) -> bool {
        self.invalid.contains(k)
    }
    /// A variable only test builds honour (lab stand-ins for DMI, syslog). Release builds, the
    /// ones that are packaged, ignore them so production has no hidden switches.
    pub fn test_hook(&self, k: &str) -> Option<&str> {
        if cfg!(debug_assertions) {
            self.get(k)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Pacemaker, crm_resource, ocf-tester, a person: the OCF contract.
    Ocf,
    /// Oracle Clusterware's script agent (`_CRS_NAME` is set).
    Clusterware,
}

impl Caller {
    /// Who called, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Caller::Ocf => "Pacemaker or another OCF caller",
            Caller::Clusterware => "Oracle Clusterware",
        }
    }
    pub fn detect(env: &Env) -> Self {
        // Present at all (even empty or not UTF-8) means Clusterware called: its contract then
        // reports the bad name, rather than the OCF one answering for it.
        if env.vars.contains_key("_CRS_NAME") || env.is_invalid("_CRS_NAME") {
            Caller::Clusterware
        } else {
            Caller::Ocf
        }
    }
}

/// Everything an action needs to know about how it was called.
pub struct Invocation {
    pub agent: &'static AgentDef,
    pub caller: Caller,
    pub action: Action,
    pub action_word: String,
    pub raw: Raw,
    /// The first problem met while gathering the parameters (a .conf file that cannot be read,
    /// a value that is not UTF-8). It is a configuration error, reported as `validate` would:
    /// stop and clean still succeed, a check cannot tell.
    pub input_error: Option<Error>,
    /// Caller values we could not use and replaced (logged once the logger is up).
    pub warnings: Vec<String>,
    /// Where Clusterware parameters were looked for, for messages.
    pub sources_hint: String,
    pub deadline: Instant,
    pub check_level: u32,
    pub probe: bool,
    pub resource: String,
    pub dialect: Dialect,
    pub paths: Paths,
    pub crs_state: Option<PathBuf>,
}

fn env_path(env: &Env, var: &str, default: &str) -> PathBuf {
    PathBuf::from(env.get(var).unwrap_or(default))
}

/// Where this host keeps what the agents read and write, from the environment (any caller:
/// the OCF and Clusterware contracts, the fence agent).
pub fn paths(env: &Env) -> Paths {
    Paths {
        dmi_dir: PathBuf::from(
            env.test_hook("CLOUDHA_DMI_DIR")
                .unwrap_or("/sys/class/dmi/id"),
        ),
        run_dir: env_path(env, "CLOUDHA_RUN_DIR", "/run/cloudha"),
        // corosync's own variable for where its configuration lives.
        corosync_conf: env_path(
            env,
            "COROSYNC_MAIN_CONFIG_FILE",
            "/etc/corosync/corosync.conf",
        ),
    }
}

/// The longest action timeout we honour; longer ones are cut to it (a day is far beyond any
/// sensible cluster timeout, and keeps every instant computed from it representable).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The shortest action timeout we honour; shorter ones are raised to it. Below a second not even
/// one netlink exchange is sure to be answered, and an action cut off between sending a change
/// and reading its answer could not say what it changed.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A caller's timeout (`scale` seconds per unit: 0.001 for Pacemaker's milliseconds, 1 for
/// Clusterware's seconds) as a duration within [`MIN_TIMEOUT`], [`MAX_TIMEOUT`]. `None` when it
/// is not a positive finite number, so the declared timeout applies instead.
pub fn parse_timeout(raw: &str, scale: f64) -> Option<Duration> {
    let n: f64 = raw.trim().parse().ok()?;
    let secs = n * scale;
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    let d = Duration::try_from_secs_f64(secs).unwrap_or(MAX_TIMEOUT);
    Some(d.clamp(MIN_TIMEOUT, MAX_TIMEOUT))
}

/// Read a `key=value` file. Blank lines and `#` comments are skipped; values may be quoted.
/// `Ok(false)` when the file does not exist; anything else unusable (a directory, a FIFO, a
/// line that is not text) is a configuration error naming the file and line.
pub fn read_conf(path: &Path, raw: &mut Raw) -> Result<bool> {
    let cannot = |what: String| Error::config(format!("cannot use {}: {what}", path.display()));
    // A FIFO or device planted at the path is refused without blocking; an admin's symlink
    // to the file is followed.
    let bytes = match crate::files::read_regular(path, true) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(cannot(e.to_string())),
    };
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(Error::config(format!("{at}: the line is not UTF-8 text")));
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::config(format!(
                "{at}: expected name=value, found {}",
                shown(line)
            )));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        raw.set(k.trim(), v, Source::File(at));
    }
    Ok(true)
}

impl Invocation {
    /// Turn "how I was called" into an invocation. `cli` holds `name=value` words given on
    /// the command line (for people); they override everything else.
    pub fn new(
        agent: &'static AgentDef,
        action_word: &str,
        env: &Env,
        cli: &[(String, String)],
    ) -> Result<Invocation, (Caller, Error)> {
        let caller = Caller::detect(env);
        let action = match caller {
            Caller::Ocf => Action::from_ocf(action_word).map_err(|e| (caller, e))?,
            Caller::Clusterware => Action::from_crs(action_word),
        };
        let mut raw = Raw::default();
        let mut input_error = None;
        let mut warnings = Vec::new();
        let mut sources_hint = String::new();
        let mut crs_state = None;
        let paths = paths(env);
        let run_dir = paths.run_dir.clone();
        let resource;
        // (variable, its value) of the caller's timeout, when it gave one.
        let mut timeout_var: Option<(String, &str)> = None;
        let mut timeout = None;
        let take_param =
            |var: String, name: &'static str, raw: &mut Raw, input_error: &mut Option<Error>| {
                if let Some(v) = env.get(&var) {
                    raw.set(name, v, Source::Env(var));
                } else if env.is_invalid(&var) && input_error.is_none() {
                    *input_error = Some(Error::config(format!(
                        "{var} is not valid UTF-8 text; parameter '{name}' must be given as UTF-8"
                    )));
                }
            };
        match caller {
            Caller::Ocf => {
                for p in agent.params {
                    take_param(
                        format!("OCF_RESKEY_{}", p.name),
                        p.name,
                        &mut raw,
                        &mut input_error,
                    );
                }
                resource = env
                    .get("OCF_RESOURCE_INSTANCE")
                    .unwrap_or(agent.name)
                    .to_string();
                if let Some(t) = env.get("OCF_RESKEY_CRM_meta_timeout") {
                    timeout_var = Some(("OCF_RESKEY_CRM_meta_timeout".into(), t));
                    timeout = parse_timeout(t, 0.001);
                }
            }
            Caller::Clusterware => {
                let name = env.get("_CRS_NAME").unwrap_or_default().to_string();
                if env.is_invalid("_CRS_NAME") {
                    input_error = Some(Error::config(
                        "_CRS_NAME (the resource name) is not valid UTF-8 text",
                    ));
                } else if name.is_empty() {
                    input_error = Some(Error::config("_CRS_NAME (the resource name) is empty"));
                }
                let conf = env_path(env, "CLOUDHA_CONFIG_DIR", "/etc/cloudha")
                    .join(format!("{name}.conf"));
                let found = if name.contains('/') {
                    false
                } else {
                    match read_conf(&conf, &mut raw) {
                        Ok(found) => found,
                        Err(e) => {
                            input_error = Some(e);
                            true
                        }
                    }
                };
                for p in agent.params {
                    take_param(
                        format!("_CRS_{}", p.crs_attribute()),
                        p.name,
                        &mut raw,
                        &mut input_error,
                    );
                }
                sources_hint = format!(
                    "set it as the resource attribute _CRS_<NAME> or as name=value in {}{}",
                    conf.display(),
                    if found { "" } else { " (not found)" }
                );
                let vars = action
                    .crs_timeout_word()
                    .map(|w| format!("_CRS_{w}_TIMEOUT"))
                    .into_iter()
                    .chain(["_CRS_SCRIPT_TIMEOUT".to_string()]);
                for var in vars {
                    if let Some(t) = env.get(&var) {
                        timeout = parse_timeout(t, 1.0);
                        if timeout.is_some() {
                            break;
                        }
                        timeout_var.get_or_insert((var, t));
                    }
                }
                crs_state = Some(
                    run_dir
                        .join("crs")
                        .join(format!("{}.state", name.replace('/', "_"))),
                );
                resource = name;
            }
        }
        for (k, v) in cli {
            raw.set(k, v, Source::CommandLine);
        }
        let declared = Duration::from_secs(u64::from(agent.timeout_of(action).unwrap_or(20)));
        if let (None, Some((var, value))) = (timeout, timeout_var) {
            warnings.push(format!(
                "{var}={} is not a usable timeout; using the declared {} s",
                shown(value),
                declared.as_secs()
            ));
        }
        let timeout = timeout.unwrap_or(declared);
        // Leave time to report before the caller kills us.
        let margin = (timeout / 10).min(Duration::from_secs(2));
        let now = Instant::now();
        let deadline = now.checked_add(timeout - margin).unwrap_or(now);
        let interval_ms: u64 = env.number("OCF_RESKEY_CRM_meta_interval", 0);
        let check_level: u32 = env.number("OCF_CHECK_LEVEL", 0);
        let major: u32 = env.number("OCF_RA_VERSION_MAJOR", 1);
        let minor: u32 = env.number("OCF_RA_VERSION_MINOR", 0);
        let dialect = if major > 1 || (major == 1 && minor >= 1) {
            Dialect::Ocf11
        } else {
            Dialect::Ocf10
        };
        Ok(Invocation {
            agent,
            caller,
            action,
            action_word: action_word.to_string(),
            raw,
            input_error,
            warnings,
            sources_hint,
            deadline,
            check_level,
            // Clusterware has no probes: a check is one unless we started the resource here
            // (state "online"), when it is the recurring check of a running resource.
            probe: match caller {
                Caller::Clusterware => {
                    crs_state.as_deref().and_then(read_state).as_deref() != Some("online")
                }
                Caller::Ocf => interval_ms == 0,
            },
            resource,
            dialect,
            paths,
            crs_state,
        })
    }
}

/// What an action produced, before it is turned into an exit code.
pub enum Outcome {
    Done,
    /// Text for stdout as it is (meta-data).
    Text(String),
    Health(Health),
    Report(Vec<String>),
}

/// OCF 1.1's "running, but degraded"; Pacemaker 2.1 treats it as success and shows the reason.
pub const OCF_DEGRADED: i32 = 190;

/// The exit-reason prefix; ocf-shellfuncs lets the caller change it.
pub fn reason_prefix() -> String {
    std::env::var("OCF_EXIT_REASON_PREFIX").unwrap_or_else(|_| "ocf-exit-reason:".to_string())
}

/// The exit code for an OCF caller.
pub fn ocf_code(kind: Kind) -> i32 {
    match kind {
        Kind::Transient | Kind::Failed => 1,
        Kind::HostArgs => 2,
        Kind::Unimplemented => 3,
        Kind::Permission => 4,
        Kind::NotInstalled => 5,
        Kind::Config => 6,
    }
}

/// Clusterware check codes.
pub mod crs_check {
    pub const ONLINE: i32 = 0;
    pub const UNPLANNED_OFFLINE: i32 = 1;
    pub const PLANNED_OFFLINE: i32 = 2;
    pub const UNKNOWN: i32 = 3;
    /// PARTIAL (INTERMEDIATE): up, but not fully healthy; our closest to OCF_DEGRADED.
    pub const PARTIAL: i32 = 4;
    pub const FAILED: i32 = 5;
}

fn read_state(path: &Path) -> Option<String> {
    crate::files::read(path).ok().map(|s| s.trim().to_string())
}

fn write_state(path: &Path, state: &str) {
    if let Err(e) = crate::files::write(path, format!("{state}\n").as_bytes()) {
        tracing::warn!("cannot record state in {}: {e}", path.display());
    }
}

/// What the caller gets: the exit code and the lines for stdout and stderr (log lines are
/// written as they happen, by the logger).
#[derive(Debug, Default)]
pub struct Reply {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Reply {
    fn code(code: i32) -> Self {
        Reply {
            code,
            ..Default::default()
        }
    }
    fn out(mut self, line: String) -> Self {
        self.stdout.push(line);
        self
    }
    fn err(mut self, line: String) -> Self {
        self.stderr.push(line);
        self
    }
    /// Write the lines and return the exit code.
    pub fn emit(self) -> i32 {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for l in &self.stdout {
            let _ = out.write_all(l.as_bytes());
        }
        let _ = out.flush();
        let mut err = std::io::stderr().lock();
        for l in &self.stderr {
            let _ = err.write_all(l.as_bytes());
        }
        self.code
    }
}

/// A refusal before any action ran (a usage error, an unknown action): the reason as the caller
/// reads it, with `ocf` as the OCF exit code (Clusterware's is always 1).
pub fn refusal(caller: Caller, msg: &str, ocf: i32) -> Reply {
    match caller {
        Caller::Ocf => Reply::code(ocf).err(line(format!("{}{msg}", reason_prefix()))),
        Caller::Clusterware => Reply::code(1).out(line(format!("CRS_ERROR: {msg}"))),
    }
}

/// A protocol line: one line, bounded, newline-terminated.
fn line(s: String) -> String {
    let mut l = one_line(&s);
    l.push('\n');
    l
}

/// In-memory clouds to use instead of the ones the parameters select (unit and property tests).
#[derive(Default, Clone, Copy)]
pub struct Stand<'a> {
    pub cloud: Option<&'a dyn Cloud>,
    pub routes: Option<&'a dyn Routes>,
}

/// Run the action; the host is created only when an action needs it.
pub fn execute(inv: &Invocation, host: &dyn Fn(Instant) -> Result<Box<dyn Host>>) -> i32 {
    answer(inv, host, Stand::default()).emit()
}

/// Run the action and return what the caller gets, without writing it.
pub fn answer(
    inv: &Invocation,
    host: &dyn Fn(Instant) -> Result<Box<dyn Host>>,
    stand: Stand,
) -> Reply {
    tracing::debug!(
        "{} of {} {}: called by {}, {}check level {}, {:.1} s to the deadline",
        shown(&inv.action_word),
        inv.agent.name,
        shown(&inv.resource),
        inv.caller.describe(),
        if inv.probe && inv.action == Action::Monitor {
            "a probe, "
        } else {
            ""
        },
        inv.check_level,
        inv.deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
    );
    let result = run(inv, host, stand);
    finish(inv, result)
}

fn run(
    inv: &Invocation,
    make_host: &dyn Fn(Instant) -> Result<Box<dyn Host>>,
    stand: Stand,
) -> Result<Outcome> {
    if inv.action == Action::MetaData {
        return Ok(Outcome::Text(metadata::xml(inv.agent, inv.dialect)));
    }
    if matches!(inv.action, Action::Abort | Action::Ignored) {
        tracing::debug!("nothing to do for {}", shown(&inv.action_word));
        return Ok(Outcome::Done);
    }
    for w in &inv.warnings {
        tracing::warn!("{w}");
    }
    let values = match &inv.input_error {
        Some(e) => Err(e.clone()),
        None => Values::validate(inv.agent.params, &inv.raw),
    }
    .map_err(|e| {
        if inv.caller == Caller::Clusterware && e.message.starts_with("required parameter") {
            Error::config(format!("{}; {}", e.message, inv.sources_hint))
        } else {
            e
        }
    });
    let agent = match values.and_then(|v| (inv.agent.build)(&v)) {
        Ok(a) => a,
        // A configuration that could never start has nothing running to stop. Failing the
        // stop would make Pacemaker fence the node over a typo.
        Err(e) if e.kind == Kind::Config && matches!(inv.action, Action::Stop | Action::Clean) => {
            tracing::warn!("nothing to stop: the configuration is invalid ({e})");
            return Ok(Outcome::Done);
        }
        Err(e) => return Err(e),
    };
    if inv.action == Action::Validate && inv.check_level < 10 {
        return Ok(Outcome::Done);
    }
    let host = make_host(inv.deadline)?;
    let cx = Ctx {
        host: host.as_ref(),
        paths: &inv.paths,
        check_level: inv.check_level,
        probe: inv.probe,
        deadline: inv.deadline,
        cloud: stand.cloud,
        routes: stand.routes,
    };
    match inv.action {
        Action::Start => agent.start(&cx).map(|_| Outcome::Done),
        Action::Stop => agent.stop(&cx).map(|_| Outcome::Done),
        Action::Clean => agent.clean(&cx).map(|_| Outcome::Done),
        Action::Monitor => agent.monitor(&cx).map(Outcome::Health),
        Action::Validate => agent.preflight(&cx).map(Outcome::Report),
        Action::ReloadAgent => agent.reload(&cx).map(|_| Outcome::Done),
        // Answered above; kept total rather than unreachable!() so no input can panic here.
        Action::MetaData | Action::Abort | Action::Ignored => Ok(Outcome::Done),
    }
}

fn finish(inv: &Invocation, result: Result<Outcome>) -> Reply {
    match inv.caller {
        Caller::Ocf => match result {
            Ok(Outcome::Health(Health::NotRunning)) => Reply::code(7),
            Ok(Outcome::Health(Health::Degraded(why))) => {
                tracing::warn!(target: BESIDE_REASON, "running, but degraded: {why}");
                Reply::code(OCF_DEGRADED).err(line(format!("{}{why}", reason_prefix())))
            }
            Ok(Outcome::Report(lines)) => lines
                .into_iter()
                .fold(Reply::code(0), |r, l| r.out(line(format!("ok: {l}")))),
            Ok(Outcome::Text(text)) => Reply::code(0).out(text),
            Ok(_) => Reply::code(0),
            Err(e) => {
                tracing::error!(target: BESIDE_REASON, "{} failed: {e}", inv.action_word);
                Reply::code(ocf_code(e.kind)).err(line(format!("{}{e}", reason_prefix())))
            }
        },
        Caller::Clusterware => {
            let state = inv.crs_state.as_deref();
            match (inv.action, result) {
                (Action::Monitor, Ok(Outcome::Health(Health::Running))) => {
                    Reply::code(crs_check::ONLINE)
                }
                (Action::Monitor, Ok(Outcome::Health(Health::Degraded(why)))) => {
                    Reply::code(crs_check::PARTIAL)
                        .out(line(format!("CRS_WARNING: degraded: {why}")))
                }
                (Action::Monitor, Ok(_)) => {
                    let was = state.and_then(read_state);
                    if was.as_deref() == Some("online") {
                        Reply::code(crs_check::UNPLANNED_OFFLINE).out(line(format!(
                            "CRS_WARNING: {} is offline but should be online",
                            inv.resource
                        )))
                    } else {
                        Reply::code(crs_check::PLANNED_OFFLINE)
                    }
                }
                (Action::Monitor, Err(e)) => {
                    let code = match e.kind {
                        // We could not tell; a person has to look.
                        Kind::Transient | Kind::Config | Kind::Unimplemented => crs_check::UNKNOWN,
                        _ => crs_check::FAILED,
                    };
                    Reply::code(code).out(line(format!("CRS_ERROR: {e}")))
                }
                (action, Ok(outcome)) => {
                    if let Some(path) = state {
                        match action {
                            Action::Start => write_state(path, "online"),
                            Action::Stop | Action::Clean => write_state(path, "offline"),
                            _ => {}
                        }
                    }
                    match outcome {
                        Outcome::Text(text) => Reply::code(0).out(text),
                        _ => Reply::code(0),
                    }
                }
                (_, Err(e)) => Reply::code(1).out(line(format!("CRS_ERROR: {e}"))),
            }
        }
    }
}
