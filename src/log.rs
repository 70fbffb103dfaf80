//! Logging where admins of resource-agents look, by ocf-shellfuncs' rules (`ha_log`,
//! `ha_debug`, `ocf_start_trace`):
//!
//! - `HA_LOGFACILITY` names a syslog facility ("none" or empty: no syslog): lines go to syslog
//!   and not to stderr, which Pacemaker logs as well (every line would be logged twice).
//! - `HA_LOGFILE`: lines are appended to that file, also instead of stderr.
//! - `HA_DEBUGLOG`: lines, debug lines included, are appended there too (not twice when it is
//!   `HA_LOGFILE`); debug lines then stay off stderr.
//! - None of these: stderr, with level and resource name. On a terminal (a person runs the
//!   agent): stderr only.
//! - The line logged beside an exit reason ([`BESIDE_REASON`]) never goes to stderr, as
//!   `ocf_exit_reason`'s `__ha_log --ignore-stderr`: the reason is there already.
//! - `HA_debug` (set, and not 0/no/false/off): debug lines too.
//! - `OCF_TRACE_RA` (else the resource parameter `trace_ra`) true: this action's events, debug
//!   included, go to a trace file: `OCF_TRACE_FILE` (else `trace_file`), or
//!   `$HA_VARLIB/trace_ra/<type>/<resource>.<action>.<date>`; at most [`TRACE_MAX`] bytes.
//! - Under Clusterware, `CRS_WARNING:` / `CRS_PROGRESS:` lines on stdout reach the crsctl client.
//!
//! Every line is one bounded line of cloudha's own events; the SDKs' warnings and errors pass
//! only when debugging or tracing (their informational lines can name credentials).

use std::ffi::CString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use syslog::{Facility, LogFormat, LoggerBackend, Severity};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::contract::{Caller, Env};
use crate::error::one_line;
use crate::params::{Key, Param, Type};

/// The tracing target prefix of cloudha's own events (its crate name).
const OWN_TARGET: &str = "cloudha";

/// The target of the line logged beside an `ocf-exit-reason:` line (the failure, the
/// degradation): syslog, the log files and the trace get it, stderr does not, or Pacemaker
/// would log the same failure twice from our stderr.
pub const BESIDE_REASON: &str = "cloudha::exit_reason";

/// A trace file stops here, with a last line saying so: a trace is for reading, and a
/// recurring action must not fill the disk.
pub const TRACE_MAX: u64 = 4 << 20;

/// `trace_ra` and `trace_file`, the resource parameters resource-agents' admins set to trace
/// an agent (pcs offers them only for agents that declare them). Reloadable: turning a trace
/// on or off must not restart the resource.
pub const TRACE_RA: Key<bool> = Key::new(
    Param::new(
        "trace_ra",
        "Trace each action to a file",
        "true: each action writes its events, debug lines included, timestamped, to a file of \
         its own under $HA_VARLIB/trace_ra/<agent>/ (default /var/lib/heartbeat), named \
         <resource>.<action>.<date>, as resource-agents does (crm report collects them); \
         not world-readable, cut at 4 MiB. Every monitor writes one: turn it off again.",
    )
    .ty(Type::Boolean)
    .default("false")
    .reloadable(),
);

pub const TRACE_FILE: Key<Option<String>> = Key::new(
    Param::new(
        "trace_file",
        "Trace file",
        "With trace_ra: the file every action's trace is written to (an absolute path, \
         rewritten by each action) instead of a file per action.",
    )
    .reloadable(),
);

/// The trace parameters every agent takes, in this order.
pub const TRACE: [Param; 2] = [TRACE_RA.param, TRACE_FILE.param];

/// A trace parameter's value as the caller passes it (OCF_RESKEY_<name>, or Clusterware's
/// _CRS_<NAME>); the logger starts before the parameters are read.
fn trace_param(env: &Env, p: &Param) -> Option<String> {
    env.get(&format!("OCF_RESKEY_{}", p.name))
        .or_else(|| env.get(&format!("_CRS_{}", p.crs_attribute())))
        .map(str::to_owned)
}

/// Room kept for the line that says the trace was cut.
const CUT_RESERVE: u64 = 256;

/// ocf-directories' defaults.
const HA_VARLIB: &str = "/var/lib/heartbeat";
const HA_DATEFMT: &str = "%b %d %T ";

/// Who logs: the agent, the resource, how it was called, and the action word (`None` when no
/// action runs, as in fence_cloudha).
#[derive(Clone, Copy)]
pub struct Who<'a> {
    pub agent: &'a str,
    pub resource: &'a str,
    pub caller: Caller,
    pub action: Option<&'a str>,
}

/// Where lines go that go to stderr (tests keep them instead).
enum Out {
    Stderr,
    Memory(Arc<Mutex<Vec<String>>>),
}

impl Out {
    fn line(&self, line: &str) {
        match self {
            Out::Stderr => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            Out::Memory(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(line.to_string());
                }
            }
        }
    }
}

/// A syslog message as `logger -t TAG` sends it: `<priority>TAG: text`. No timestamp: the
/// receiver stamps it in local time (the crate's RFC 3164 formatter writes UTC, which
/// syslog-ng would keep as if it were local).
#[derive(Clone, Copy)]
struct Plain(Facility);

impl LogFormat<&str> for Plain {
    fn format<W: std::io::Write>(
        &self,
        w: &mut W,
        severity: Severity,
        line: &str,
    ) -> syslog::Result<()> {
        // LoggerBackend formats the whole message before sending: one datagram per line.
        write!(w, "<{}>{line}", self.0 as u8 | severity as u8).map_err(syslog::Error::Write)
    }
}

type Syslog = syslog::Logger<LoggerBackend, Plain>;

/// The syslog socket, connected and non-blocking; `None` when there is none to use.
fn connect_syslog(facility: Facility, path: &str) -> Option<Syslog> {
    let logger = syslog::unix_custom(Plain(facility), path).ok()?;
    match &logger.backend {
        // Never wait for the syslog daemon: a full queue (a busy journald, a reader that is
        // gone) would hold the action past its deadline. A line it does not take goes to
        // stderr instead.
        LoggerBackend::Unix(sock) => sock.set_nonblocking(true).ok()?,
        // A stream socket cannot drop one line without garbling the next: not used.
        _ => return None,
    }
    Some(logger)
}

/// The current time as `strftime(format)` in local time, as `date +FORMAT` prints it
/// (ocf-shellfuncs' `hadate` is `date "+$HA_DATEFMT"`), and the milliseconds.
fn local_time(format: &str) -> (String, u32) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let Ok(fmt) = CString::new(format) else {
        return (String::new(), 0);
    };
    let secs = libc::time_t::try_from(now.as_secs()).unwrap_or(libc::time_t::MAX);
    // SAFETY: tm is plain data that localtime_r fills in.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is reentrant.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return (String::new(), 0);
    }
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length, fmt is NUL-terminated, tm was filled above.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    (
        String::from_utf8_lossy(&buf[..n]).into_owned(),
        now.subsec_millis(),
    )
}

/// A value as one part of a file name: no directory separators, no `.`/`..`, bounded.
fn file_part(s: &str) -> String {
    let part: String = s
        .chars()
        .take(100)
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if part.is_empty() || part == "." || part == ".." {
        "_".to_string()
    } else {
        part
    }
}

/// Where the trace of this action goes, by ocf_start_trace's rules.
#[derive(Debug, PartialEq, Eq)]
pub enum TraceDest {
    /// A file descriptor (3-9) the caller opened for writing.
    Fd(u8),
    /// A path the admin gave; rewritten by each action, as resource-agents does.
    File(PathBuf),
    /// `<dir>/<type>/<resource>.<action>.<date>`, a new file per action.
    Default(PathBuf),
}

impl std::fmt::Display for TraceDest {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            TraceDest::Fd(n) => write!(f, "file descriptor {n}"),
            TraceDest::File(p) | TraceDest::Default(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Whether `trace_ra` is on, and where its trace goes, with a warning for the admin when the
/// trace file asked for cannot be used.
pub fn trace_dest(env: &Env, who: &Who, terminal: bool) -> (Option<TraceDest>, Option<String>) {
    if !dest_asked(env) {
        return (None, None);
    }
    let mut warning = None;
    let file = env
        .get("OCF_TRACE_FILE")
        .map(str::to_owned)
        .or_else(|| trace_param(env, &TRACE_FILE.param));
    match file.as_deref() {
        Some(f) if f.len() == 1 && ("3"..="9").contains(&f) => {
            return (f.parse().ok().map(TraceDest::Fd), None);
        }
        // ocf-shellfuncs' pattern /*/*: an absolute path below some directory.
        Some(f) if f.starts_with('/') && f[1..].contains('/') => {
            return (Some(TraceDest::File(PathBuf::from(f))), None);
        }
        Some(f) => {
            warning = Some(format!(
                "the trace file {} is neither a file descriptor (3-9) nor an absolute path; \
                 using the default place",
                crate::error::shown(f)
            ));
        }
        None => {}
    }
    // On a terminal the person sees the debug lines on stderr instead.
    let Some(action) = who.action.filter(|_| !terminal) else {
        return (None, warning);
    };
    let dir = env.get("OCF_RESKEY_trace_dir").map_or_else(
        || Path::new(env.get("HA_VARLIB").unwrap_or(HA_VARLIB)).join("trace_ra"),
        PathBuf::from,
    );
    let kind = env.get("OCF_RESOURCE_TYPE").unwrap_or(who.agent);
    let name = format!(
        "{}.{}.{}",
        file_part(who.resource),
        file_part(action),
        local_time("%F.%T").0
    );
    (
        Some(TraceDest::Default(dir.join(file_part(kind)).join(name))),
        warning,
    )
}

/// The trace file of this action, cut at [`TRACE_MAX`].
struct Trace {
    file: File,
    written: u64,
    cut: bool,
}

impl Trace {
    fn open(dest: &TraceDest) -> std::io::Result<Trace> {
        let flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        let mut opts = std::fs::OpenOptions::new();
        // Not world-readable: a trace says more than the log does.
        opts.mode(0o640).custom_flags(flags);
        let file = match dest {
            TraceDest::Fd(n) => std::fs::OpenOptions::new()
                .append(true)
                .open(format!("/proc/self/fd/{n}"))?,
            TraceDest::File(path) => {
                mkdir_p(path)?;
                opts.write(true).create(true).truncate(true).open(path)?
            }
            TraceDest::Default(path) => {
                mkdir_p(path)?;
                // Appending: two calls of the same action within one second share the file.
                opts.append(true)
                    .create(true)
                    .custom_flags(flags | libc::O_NOFOLLOW)
                    .open(path)?
            }
        };
        Ok(Trace {
            file,
            written: 0,
            cut: false,
        })
    }

    fn line(&mut self, text: &str) {
        if self.cut {
            return;
        }
        let line = format!("{text}\n");
        let len = line.len() as u64;
        if self.written + len > TRACE_MAX - CUT_RESERVE {
            let _ = writeln!(
                self.file,
                "... trace cut at {} bytes: later events of this action are not written",
                self.written
            );
            self.cut = true;
        } else if self.file.write_all(line.as_bytes()).is_ok() {
            self.written += len;
        } else {
            self.cut = true;
        }
    }
}

/// `mkdir -p` of a file's directory, with the modes of resource-agents' (umask 022).
fn mkdir_p(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir),
        None => Ok(()),
    }
}

/// A log file lines are appended to (`>>` in ocf-shellfuncs).
fn append_to(path: &str) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        // A FIFO with no reader must not hold the action.
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn append(file: &Option<File>, line: &str) -> bool {
    file.as_ref()
        .is_some_and(|mut f| f.write_all(line.as_bytes()).is_ok())
}

/// `HA_debug` as ocf-shellfuncs reads it (set and not 0), also taking Pacemaker's words for
/// "off" (its PCMK_debug value is passed on as HA_debug).
pub fn debug_on(env: &Env) -> bool {
    env.get("HA_debug")
        .is_some_and(|v| crate::params::parse_bool(v) != Some(false))
}

struct Logger {
    tag: String,
    debug: bool,
    crs: bool,
    terminal: bool,
    datefmt: String,
    syslog: Option<Mutex<Syslog>>,
    logfile: Option<File>,
    debuglog: Option<File>,
    /// HA_DEBUGLOG is HA_LOGFILE: its lines are written there once.
    one_file: bool,
    trace: Option<Mutex<Trace>>,
    out: Out,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Logger {
    /// Write one line to the logs (not the trace) by ocf-shellfuncs' rules; `to_stderr`
    /// false: never to stderr, even on a terminal or when no sink took it.
    fn log(&self, level: Level, word: &str, msg: &str, to_stderr: bool) {
        let line = one_line(&format!("{}: {word}: {msg}", self.tag));
        if self.crs {
            match level {
                Level::WARN => println!("CRS_WARNING: {msg}"),
                Level::INFO => println!("CRS_PROGRESS: {msg}"),
                _ => {}
            }
        }
        if self.terminal {
            if to_stderr {
                self.out.line(&line);
            }
            return;
        }
        let sent = self.syslog.as_ref().is_some_and(|s| {
            s.lock().is_ok_and(|mut s| {
                match level {
                    Level::ERROR => s.err(line.as_str()),
                    Level::WARN => s.warning(line.as_str()),
                    Level::INFO => s.info(line.as_str()),
                    _ => s.debug(line.as_str()),
                }
                .is_ok()
            })
        });
        let date = || one_line(&local_time(&self.datefmt).0);
        let debug_line = || format!("{}:\t{}{word}: {msg}\n", self.tag, date());
        let filed = if level == Level::DEBUG {
            append(&self.debuglog, &debug_line())
        } else {
            if !self.one_file {
                append(&self.debuglog, &debug_line());
            }
            append(
                &self.logfile,
                &format!("{} {}:    {word}: {msg}\n", date(), self.tag),
            )
        };
        // stderr when no sink meant for this line took it (a full syslog queue included).
        if !sent && !filed && to_stderr {
            self.out.line(&line);
        }
    }
}

impl<S: Subscriber> Layer<S> for Logger {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level == Level::TRACE {
            return;
        }
        // Only our own events: the SDKs log at info what an admin must never see in a cluster
        // log (aws-config's profile provider prints the loaded access key id). Theirs pass only
        // when debugging or tracing, and only warnings and errors.
        let own = event.metadata().target().starts_with(OWN_TARGET);
        let tracing = self.trace.is_some();
        if !own && !(level <= Level::WARN && (self.debug || tracing)) {
            return;
        }
        let to_logs = self.debug || (own && level != Level::DEBUG);
        if !to_logs && !tracing {
            return;
        }
        let mut msg = Message(String::new());
        event.record(&mut msg);
        // A value with a newline must not write a second (forged) line anywhere.
        let msg = one_line(&msg.0);
        let word = match level {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            _ => "DEBUG",
        };
        if let Some(trace) = &self.trace
            && let Ok(mut t) = trace.lock()
        {
            let (date, ms) = local_time("%F %T");
            t.line(&format!(
                "{date}.{ms:03} [{}] {word}: {msg}",
                std::process::id()
            ));
        }
        if to_logs {
            let beside_reason = event.metadata().target() == BESIDE_REASON;
            self.log(level, word, &msg, !beside_reason);
        }
    }
}

fn tag(env: &Env, who: &Who) -> String {
    match env.get("HA_LOGTAG") {
        Some(t) => one_line(&t.chars().take(128).collect::<String>()),
        // The resource name comes from the caller: one short line, whatever it holds.
        None => format!(
            "{}({})[{}]",
            who.agent,
            one_line(&who.resource.chars().take(64).collect::<String>()),
            std::process::id()
        ),
    }
}

/// Install the logger for this process.
pub fn init(env: &Env, who: Who) {
    let terminal = std::io::stdin().is_terminal() || std::io::stderr().is_terminal();
    let mut warnings = Vec::new();
    let syslog = match env.get("HA_LOGFACILITY") {
        None | Some("none") => None,
        Some(name) => match name.parse::<Facility>() {
            Ok(f) => {
                // Overridable so tests can listen without touching /dev/log.
                let path = env.test_hook("CLOUDHA_SYSLOG_SOCKET").unwrap_or("/dev/log");
                connect_syslog(f, path).map(Mutex::new)
            }
            Err(()) => {
                warnings.push(format!(
                    "HA_LOGFACILITY={} is not a syslog facility; logging to stderr",
                    crate::error::shown(name)
                ));
                None
            }
        },
    };
    let mut open = |var: &str| {
        let path = env.get(var)?;
        append_to(path)
            .map_err(|e| {
                warnings.push(format!(
                    "cannot append to {var}={}: {e}",
                    crate::error::shown(path)
                ))
            })
            .ok()
    };
    let logfile = open("HA_LOGFILE");
    let one_file =
        env.get("HA_DEBUGLOG").is_some() && env.get("HA_DEBUGLOG") == env.get("HA_LOGFILE");
    let debuglog = if one_file {
        logfile.as_ref().and_then(|f| f.try_clone().ok())
    } else {
        open("HA_DEBUGLOG")
    };
    let (dest, warning) = trace_dest(env, &who, terminal);
    warnings.extend(warning);
    let trace = dest.and_then(|d| match Trace::open(&d) {
        Ok(mut t) => {
            let (date, ms) = local_time("%F %T");
            t.line(&one_line(&format!(
                "{date}.{ms:03} [{}] cloudha {}: trace of {} {} for {}",
                std::process::id(),
                env!("CARGO_PKG_VERSION"),
                who.agent,
                who.action.unwrap_or_default(),
                who.resource,
            )));
            Some(Mutex::new(t))
        }
        Err(e) => {
            warnings.push(format!(
                "cannot write the trace to {d}: {e}; no trace for this action"
            ));
            None
        }
    });
    // On a terminal without a trace file, trace_ra shows the debug lines (as `set -x` would).
    let debug = debug_on(env) || (terminal && trace.is_none() && dest_asked(env));
    let logger = Logger {
        tag: tag(env, &who),
        debug,
        crs: who.caller == Caller::Clusterware,
        terminal,
        datefmt: env.get("HA_DATEFMT").unwrap_or(HA_DATEFMT).to_string(),
        syslog,
        logfile,
        debuglog,
        one_file,
        trace,
        out: Out::Stderr,
    };
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logger));
    for w in warnings {
        tracing::warn!("{w}");
    }
}

fn dest_asked(env: &Env) -> bool {
    env.get("OCF_TRACE_RA")
        .map(str::to_owned)
        .or_else(|| trace_param(env, &TRACE_RA.param))
        .as_deref()
        .and_then(crate::params::parse_bool)
        .unwrap_or(false)
}

/// A logger with debug lines on that keeps the lines it would write to stderr: for tests of
/// what admins read. Use it with `tracing::subscriber::with_default`.
pub fn capture(who: Who) -> (tracing::Dispatch, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let logger = Logger {
        tag: tag(&Env::default(), &who),
        debug: true,
        crs: false,
        terminal: false,
        datefmt: HA_DATEFMT.to_string(),
        syslog: None,
        logfile: None,
        debuglog: None,
        one_file: false,
        trace: None,
        out: Out::Memory(lines.clone()),
    };
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(logger)),
        lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(action: Option<&'static str>) -> Who<'static> {
        Who {
            agent: "vip",
            resource: "web/../vip",
            caller: Caller::Ocf,
            action,
        }
    }

    #[test]
    fn trace_destination_follows_ocf_start_trace() {
        let env = |pairs: &[(&str, &str)]| Env::from_pairs(pairs.iter().copied());
        let w = who(Some("start"));
        assert_eq!(trace_dest(&env(&[]), &w, false), (None, None));
        assert_eq!(
            trace_dest(&env(&[("OCF_TRACE_RA", "0")]), &w, false),
            (None, None)
        );
        // The parameter stands in for OCF_TRACE_RA, which wins.
        assert_eq!(
            trace_dest(
                &env(&[("OCF_TRACE_RA", "no"), ("OCF_RESKEY_trace_ra", "1")]),
                &w,
                false
            )
            .0,
            None
        );
        let (Some(TraceDest::Default(p)), None) = trace_dest(
            &env(&[("OCF_RESKEY_trace_ra", "1"), ("HA_VARLIB", "/v")]),
            &w,
            false,
        ) else {
            panic!("no default destination");
        };
        let p = p.to_string_lossy().into_owned();
        // <HA_VARLIB>/trace_ra/<type>/<resource>.<action>.<date +%F.%T>, no '/' from values.
        assert!(p.starts_with("/v/trace_ra/vip/web_.._vip.start."), "{p}");
        let stamp = p.rsplit_once(".start.").unwrap().1;
        assert_eq!(stamp.len(), "2012-11-27.08:37:08".len(), "{p}");
        let (Some(TraceDest::Default(p)), _) = trace_dest(
            &env(&[
                ("OCF_TRACE_RA", "yes"),
                ("OCF_RESKEY_trace_dir", "/t"),
                ("OCF_RESOURCE_TYPE", ".."),
            ]),
            &w,
            false,
        ) else {
            panic!("no destination");
        };
        let p = p.to_string_lossy().into_owned();
        assert!(p.starts_with("/t/_/web_.._vip.start."), "{p}");
        // The admin's file, or a descriptor; anything else warns and uses the default.
        assert_eq!(
            trace_dest(
                &env(&[("OCF_TRACE_RA", "1"), ("OCF_RESKEY_trace_file", "/tmp/x")]),
                &w,
                false
            ),
            (Some(TraceDest::File("/tmp/x".into())), None)
        );
        assert_eq!(
            trace_dest(
                &env(&[("OCF_TRACE_RA", "1"), ("OCF_TRACE_FILE", "7")]),
                &w,
                false
            ),
            (Some(TraceDest::Fd(7)), None)
        );
        let (d, warn) = trace_dest(
            &env(&[("OCF_TRACE_RA", "1"), ("OCF_TRACE_FILE", "/x")]),
            &w,
            false,
        );
        assert!(matches!(d, Some(TraceDest::Default(_))) && warn.is_some());
        // A person at a terminal reads the debug lines there; no action, no trace.
        assert_eq!(
            trace_dest(&env(&[("OCF_TRACE_RA", "1")]), &w, true),
            (None, None)
        );
        assert_eq!(
            trace_dest(&env(&[("OCF_TRACE_RA", "1")]), &who(None), false),
            (None, None)
        );
    }

    #[test]
    fn trace_is_cut_with_a_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/t");
        let mut t = Trace::open(&TraceDest::File(path.clone())).unwrap();
        let line = "x".repeat(1000);
        for _ in 0..10_000 {
            t.line(&line);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() as u64 <= TRACE_MAX, "{}", text.len());
        assert!(text.len() as u64 > TRACE_MAX - 2 * 1024);
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("... trace cut at ")
        );
    }

    #[test]
    fn debug_words() {
        let on = |v: &str| debug_on(&Env::from_pairs([("HA_debug", v)]));
        assert!(on("1") && on("yes") && on("pacemaker-execd"));
        assert!(!on("0") && !on("no") && !on("") && !on("off"));
        assert!(!debug_on(&Env::default()));
    }
}
