//! One error type for the whole crate. Its [`Kind`] alone decides the exit code each caller
//! sees (see `contract.rs`), so agents say *what* went wrong, never *which number* to return.

use std::fmt;

/// How a failure is classified. The doc of each variant is the rule for choosing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The configuration is wrong wherever it runs (bad `ip`, missing required parameter).
    /// OCF 6: Pacemaker bans the resource from every node, so never use it for anything that
    /// could be fine on another node or a minute later.
    Config,
    /// The parameters cannot work on *this* host (no route to the address, wrong interface).
    /// OCF 2: banned from this node only.
    HostArgs,
    /// Something this host lacks (an interface, a kernel feature). OCF 5: banned from this node.
    NotInstalled,
    /// Not allowed on this host (not root, cloud permission missing). OCF 4.
    Permission,
    /// The action or feature is not implemented. OCF 3.
    Unimplemented,
    /// The resource is broken here (address on a dead link). OCF 1: restart/recover.
    Failed,
    /// Temporary trouble (timeout, throttling, busy netlink). OCF 1, and never "not running".
    Transient,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One constructor per kind: `Error::config(msg)` and so on.
macro_rules! kinds {
    ($($f:ident => $k:ident),* $(,)?) => {$(
        pub fn $f(m: impl Into<String>) -> Self {
            Self::new(Kind::$k, m)
        }
    )*};
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    kinds! {
        config => Config,
        host_args => HostArgs,
        not_installed => NotInstalled,
        permission => Permission,
        unimplemented => Unimplemented,
        failed => Failed,
        transient => Transient,
    }

    /// Prefix the message with what we were doing, keeping the kind.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The longest piece of an outside value echoed into a message; the rest is summarised.
const SHOWN_MAX: usize = 64;
/// The longest line written to a caller's protocol (`ocf-exit-reason:`, `CRS_*:`, a log line).
pub const LINE_MAX: usize = 1024;

/// An outside value (a parameter, a file line, a peer) as it may appear inside a message:
/// quoted, control characters escaped, at most [`SHOWN_MAX`] characters. Messages built with
/// it cannot forge a second line of the caller's protocol nor flood it.
pub fn shown(value: &str) -> String {
    let mut out = String::from("'");
    let mut chars = value.chars();
    for c in chars.by_ref().take(SHOWN_MAX) {
        out.extend(c.escape_debug());
    }
    let rest = chars.count();
    out.push('\'');
    if rest > 0 {
        out.push_str(&format!("… ({} more characters)", rest));
    }
    out
}

/// One protocol line from a message: control characters (newlines included) escaped, cut at
/// [`LINE_MAX`] bytes on a character boundary. The last defence; messages should already
/// quote what came from outside with [`shown`].
pub fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(LINE_MAX));
    for c in msg.chars() {
        let piece: String = if c.is_control() {
            c.escape_debug().collect()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > LINE_MAX - 3 {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_quotes_escapes_and_caps() {
        assert_eq!(shown("eth0"), "'eth0'");
        assert_eq!(shown("a\nocf-exit-reason:x"), "'a\\nocf-exit-reason:x'");
        let long = shown(&"x".repeat(100_000));
        assert!(long.len() < 120, "{long}");
        assert!(long.ends_with("(99936 more characters)"));
    }

    #[test]
    fn one_line_is_one_bounded_line() {
        let l = one_line(&format!("a\nb\r{}", "é".repeat(5000)));
        assert!(!l.contains('\n') && !l.contains('\r'));
        assert!(l.len() <= LINE_MAX);
        assert!(l.starts_with("a\\nb\\r"));
    }
}
