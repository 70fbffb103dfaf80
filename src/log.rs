//! Logging the way cluster admins expect: stderr lines with level and resource name (Pacemaker
//! and Clusterware put them in their logs), debug output when `HA_debug=1` or `OCF_TRACE_RA`
//! is set, syslog when `HA_LOGFACILITY` names a facility (the ocf-shellfuncs convention), and
//! under Clusterware `CRS_WARNING:` / `CRS_PROGRESS:` lines that reach the crsctl client.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::contract::{Caller, Env};

/// The tracing target prefix of cloudha's own events (its crate name).
const OWN_TARGET: &str = "cloudha";

struct Logger {
    tag: String,
    debug: bool,
    crs: bool,
    syslog: Option<(UnixDatagram, u8)>,
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

fn facility(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "authpriv" => 10,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

impl<S: Subscriber> Layer<S> for Logger {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level == Level::TRACE || (level == Level::DEBUG && !self.debug) {
            return;
        }
        // Only our own events: the SDKs log at info what an admin must never see in a cluster
        // log (aws-config's profile provider prints the loaded access key id). Theirs pass only
        // when debugging, and only warnings and errors.
        let own = event.metadata().target().starts_with(OWN_TARGET);
        let foreign_ok = self.debug && level <= Level::WARN;
        if !(own || foreign_ok) {
            return;
        }
        let mut msg = Message(String::new());
        event.record(&mut msg);
        // A value with a newline must not write a second (forged) line anywhere.
        msg.0 = crate::error::one_line(&msg.0);
        let (word, severity) = match level {
            Level::ERROR => ("ERROR", 3),
            Level::WARN => ("WARNING", 4),
            Level::INFO => ("INFO", 6),
            _ => ("DEBUG", 7),
        };
        // One bounded line, prefix included.
        let line = crate::error::one_line(&format!("{}: {word}: {}", self.tag, msg.0));
        let _ = writeln!(std::io::stderr(), "{line}");
        if self.crs {
            match level {
                Level::WARN => println!("CRS_WARNING: {}", msg.0),
                Level::INFO => println!("CRS_PROGRESS: {}", msg.0),
                _ => {}
            }
        }
        if let Some((sock, fac)) = &self.syslog {
            let line = crate::error::one_line(&format!(
                "<{}>{}: {word}: {}",
                fac * 8 + severity,
                self.tag,
                msg.0
            ));
            let _ = sock.send(line.as_bytes());
        }
    }
}

/// Install the logger for this process; `name` is the resource (or agent) name.
pub fn init(env: &Env, agent: &str, name: &str, caller: Caller) {
    let debug = env.get("HA_debug") == Some("1") || env.get("OCF_TRACE_RA").is_some();
    let syslog = env.get("HA_LOGFACILITY").and_then(facility).and_then(|f| {
        let sock = UnixDatagram::unbound().ok()?;
        // Overridable so tests can listen without touching /dev/log.
        sock.connect(env.test_hook("CLOUDHA_SYSLOG_SOCKET").unwrap_or("/dev/log"))
            .ok()?;
        // Never wait for the syslog daemon: a full queue (a busy journald, a reader that is
        // gone) would hold the action past its deadline. A line that does not fit is dropped;
        // stderr still carries it.
        sock.set_nonblocking(true).ok()?;
        Some((sock, f))
    });
    let logger = Logger {
        // The resource name comes from the caller: one short line, whatever it holds.
        tag: format!(
            "{agent}({})[{}]",
            crate::error::one_line(&name.chars().take(64).collect::<String>()),
            std::process::id()
        ),
        debug,
        crs: caller == Caller::Clusterware,
        syslog,
    };
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logger));
}
