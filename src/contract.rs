//! The caller contracts in one place: how Pacemaker (OCF 1.1) and Oracle Clusterware
//! (ACTION_SCRIPT) call us, turned into (agent, action, parameters, deadline); and an
//! outcome turned into the exit code and messages that caller understands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agents::{AgentDef, Ctx, Health, Paths};
use crate::error::{Error, Kind, Result, one_line};
use crate::host::Host;
use crate::metadata::{self, Dialect};
use crate::params::{Raw, Source, Values};

/// A snapshot of the environment (so tests can hand one in).
#[derive(Debug, Clone, Default)]
pub struct Env(pub BTreeMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Env(std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect())
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
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
    pub fn detect(env: &Env) -> Self {
        if env.get("_CRS_NAME").is_some() {
            Caller::Clusterware
        } else {
            Caller::Ocf
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    MetaData,
    Validate,
    ReloadAgent,
    /// Clusterware: a forced stop that must succeed on a half-broken resource.
    Clean,
    /// Clusterware: called when another action hangs; a one-shot process has nothing to abort.
    Abort,
    /// Clusterware actions we have nothing to do for (Oracle's examples return success).
    Ignored,
}

impl Action {
    fn parse(caller: Caller, word: &str) -> Result<Action> {
        Ok(match (caller, word) {
            (_, "start") => Action::Start,
            (_, "stop") => Action::Stop,
            (_, "meta-data") => Action::MetaData,
            (Caller::Ocf, "monitor" | "status") => Action::Monitor,
            (Caller::Ocf, "validate-all") => Action::Validate,
            (Caller::Ocf, "reload-agent") => Action::ReloadAgent,
            (Caller::Clusterware, "check") => Action::Monitor,
            (Caller::Clusterware, "clean") => Action::Clean,
            (Caller::Clusterware, "abort") => Action::Abort,
            (Caller::Clusterware, _) => Action::Ignored,
            (Caller::Ocf, other) => {
                return Err(Error::unimplemented(format!(
                    "action '{other}' is not implemented (supported: start, stop, monitor, \
                     meta-data, validate-all, reload-agent)"
                )));
            }
        })
    }

    /// The name used for declared timeouts.
    fn decl_name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop | Action::Clean | Action::Abort | Action::Ignored => "stop",
            Action::Monitor => "monitor",
            Action::MetaData => "meta-data",
            Action::Validate => "validate-all",
            Action::ReloadAgent => "reload-agent",
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

/// Read a `key=value` file. Blank lines and `#` comments are skipped; values may be quoted.
pub fn read_conf(path: &Path, raw: &mut Raw) -> Result<bool> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::host_args(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::config(format!(
                "{}:{}: expected name=value, found '{line}'",
                path.display(),
                n + 1
            )));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        raw.set(
            k.trim(),
            v,
            Source::File(format!("{}:{}", path.display(), n + 1)),
        );
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
        let action = Action::parse(caller, action_word).map_err(|e| (caller, e))?;
        let mut raw = Raw::default();
        let mut sources_hint = String::new();
        let mut crs_state = None;
        let run_dir = env_path(env, "CLOUDHA_RUN_DIR", "/run/cloudha");
        let resource;
        let timeout_s: Option<f64>;
        match caller {
            Caller::Ocf => {
                for p in agent.params {
                    let var = format!("OCF_RESKEY_{}", p.name);
                    if let Some(v) = env.get(&var) {
                        raw.set(p.name, v, Source::Env(var));
                    }
                }
                resource = env
                    .get("OCF_RESOURCE_INSTANCE")
                    .unwrap_or(agent.name)
                    .to_string();
                timeout_s = env
                    .get("OCF_RESKEY_CRM_meta_timeout")
                    .and_then(|t| t.parse::<f64>().ok())
                    .map(|ms| ms / 1000.0);
            }
            Caller::Clusterware => {
                let name = env.get("_CRS_NAME").unwrap_or_default().to_string();
                let conf = env_path(env, "CLOUDHA_CONFIG_DIR", "/etc/cloudha")
                    .join(format!("{name}.conf"));
                let found = if name.contains('/') {
                    false
                } else {
                    read_conf(&conf, &mut raw).map_err(|e| (caller, e))?
                };
                for p in agent.params {
                    let var = format!("_CRS_{}", p.crs_attribute());
                    if let Some(v) = env.get(&var) {
                        raw.set(p.name, v, Source::Env(var));
                    }
                }
                sources_hint = format!(
                    "set it as the resource attribute _CRS_<NAME> or as name=value in {}{}",
                    conf.display(),
                    if found { "" } else { " (not found)" }
                );
                let word = match action {
                    Action::Start => Some("START"),
                    Action::Stop => Some("STOP"),
                    Action::Monitor => Some("CHECK"),
                    Action::Clean => Some("CLEAN"),
                    _ => None,
                };
                let secs = |var: &str| {
                    env.get(var)
                        .and_then(|t| t.parse::<f64>().ok())
                        .filter(|t| *t > 0.0)
                };
                timeout_s = word
                    .and_then(|w| secs(&format!("_CRS_{w}_TIMEOUT")))
                    .or_else(|| secs("_CRS_SCRIPT_TIMEOUT"));
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
        let declared = f64::from(agent.timeout_of(action.decl_name()).unwrap_or(20));
        let timeout = Duration::from_secs_f64(timeout_s.filter(|t| *t > 0.0).unwrap_or(declared));
        // Leave time to report before the caller kills us.
        let margin = (timeout / 10).min(Duration::from_secs(2));
        let interval_ms = env
            .get("OCF_RESKEY_CRM_meta_interval")
            .and_then(|i| i.parse::<u64>().ok())
            .unwrap_or(0);
        let check_level = env
            .get("OCF_CHECK_LEVEL")
            .and_then(|l| l.parse::<u32>().ok())
            .unwrap_or(0);
        let major = env
            .get("OCF_RA_VERSION_MAJOR")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1);
        let minor = env
            .get("OCF_RA_VERSION_MINOR")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
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
            sources_hint,
            deadline: Instant::now() + timeout - margin,
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
            paths: Paths {
                dmi_dir: env_path(env, "CLOUDHA_DMI_DIR", "/sys/class/dmi/id"),
                run_dir,
            },
            crs_state,
        })
    }
}

/// What an action produced, before it is turned into an exit code.
pub enum Outcome {
    Done,
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
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn write_state(path: &Path, state: &str) {
    let res = path
        .parent()
        .map(std::fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|_| std::fs::write(path, format!("{state}\n")));
    if let Err(e) = res {
        tracing::warn!("cannot record state in {}: {e}", path.display());
    }
}

/// Run the action; the host is created only when an action needs it.
pub fn execute(inv: &Invocation, host: &dyn Fn(Instant) -> Result<Box<dyn Host>>) -> i32 {
    tracing::debug!(
        "{:?} {} (caller {:?}, probe {}, check level {}, {:?} left)",
        inv.action,
        inv.agent.name,
        inv.caller,
        inv.probe,
        inv.check_level,
        inv.deadline.saturating_duration_since(Instant::now())
    );
    let result = run(inv, host);
    finish(inv, result)
}

fn run(inv: &Invocation, make_host: &dyn Fn(Instant) -> Result<Box<dyn Host>>) -> Result<Outcome> {
    if inv.action == Action::MetaData {
        print!("{}", metadata::xml(inv.agent, inv.dialect));
        return Ok(Outcome::Done);
    }
    if matches!(inv.action, Action::Abort | Action::Ignored) {
        tracing::debug!("nothing to do for '{}'", inv.action_word);
        return Ok(Outcome::Done);
    }
    let values = Values::validate(inv.agent.params, &inv.raw).map_err(|e| {
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
        cloud: None,
        routes: None,
    };
    match inv.action {
        Action::Start => agent.start(&cx).map(|_| Outcome::Done),
        Action::Stop => agent.stop(&cx).map(|_| Outcome::Done),
        Action::Clean => agent.clean(&cx).map(|_| Outcome::Done),
        Action::Monitor => agent.monitor(&cx).map(Outcome::Health),
        Action::Validate => agent.preflight(&cx).map(Outcome::Report),
        Action::ReloadAgent => agent.reload(&cx).map(|_| Outcome::Done),
        Action::MetaData | Action::Abort | Action::Ignored => unreachable!("handled above"),
    }
}

fn finish(inv: &Invocation, result: Result<Outcome>) -> i32 {
    match inv.caller {
        Caller::Ocf => match result {
            Ok(Outcome::Health(Health::NotRunning)) => 7,
            Ok(Outcome::Health(Health::Degraded(why))) => {
                tracing::warn!("running, but degraded: {why}");
                eprintln!("{}", one_line(&format!("{}{why}", reason_prefix())));
                OCF_DEGRADED
            }
            Ok(Outcome::Report(lines)) => {
                for l in lines {
                    println!("{}", one_line(&format!("ok: {l}")));
                }
                0
            }
            Ok(_) => 0,
            Err(e) => {
                tracing::error!("{} failed: {e}", inv.action_word);
                eprintln!("{}", one_line(&format!("{}{e}", reason_prefix())));
                ocf_code(e.kind)
            }
        },
        Caller::Clusterware => {
            let state = inv.crs_state.as_deref();
            match (inv.action, result) {
                (Action::Monitor, Ok(Outcome::Health(Health::Running))) => crs_check::ONLINE,
                (Action::Monitor, Ok(Outcome::Health(Health::Degraded(why)))) => {
                    println!("{}", one_line(&format!("CRS_WARNING: degraded: {why}")));
                    crs_check::PARTIAL
                }
                (Action::Monitor, Ok(_)) => {
                    let was = state.and_then(read_state);
                    if was.as_deref() == Some("online") {
                        println!(
                            "{}",
                            one_line(&format!(
                                "CRS_WARNING: {} is offline but should be online",
                                inv.resource
                            ))
                        );
                        crs_check::UNPLANNED_OFFLINE
                    } else {
                        crs_check::PLANNED_OFFLINE
                    }
                }
                (Action::Monitor, Err(e)) => {
                    println!("{}", one_line(&format!("CRS_ERROR: {e}")));
                    match e.kind {
                        // We could not tell; a person has to look.
                        Kind::Transient | Kind::Config | Kind::Unimplemented => crs_check::UNKNOWN,
                        _ => crs_check::FAILED,
                    }
                }
                (action, Ok(_)) => {
                    if let Some(path) = state {
                        match action {
                            Action::Start => write_state(path, "online"),
                            Action::Stop | Action::Clean => write_state(path, "offline"),
                            _ => {}
                        }
                    }
                    0
                }
                (_, Err(e)) => {
                    println!("{}", one_line(&format!("CRS_ERROR: {e}")));
                    1
                }
            }
        }
    }
}
