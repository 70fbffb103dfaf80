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

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn config(m: impl Into<String>) -> Self {
        Self::new(Kind::Config, m)
    }
    pub fn host_args(m: impl Into<String>) -> Self {
        Self::new(Kind::HostArgs, m)
    }
    pub fn not_installed(m: impl Into<String>) -> Self {
        Self::new(Kind::NotInstalled, m)
    }
    pub fn permission(m: impl Into<String>) -> Self {
        Self::new(Kind::Permission, m)
    }
    pub fn unimplemented(m: impl Into<String>) -> Self {
        Self::new(Kind::Unimplemented, m)
    }
    pub fn failed(m: impl Into<String>) -> Self {
        Self::new(Kind::Failed, m)
    }
    pub fn transient(m: impl Into<String>) -> Self {
        Self::new(Kind::Transient, m)
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
