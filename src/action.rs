//! The actions a caller can ask for, with the words each caller uses for them: the one list the
//! contract parses, the registry declares timeouts for, meta-data advertises, and the CLI, the
//! completions and the man pages show.

use crate::error::{Error, Result, shown};

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

/// The OCF words, in the order they are documented.
pub const OCF_WORDS: &[(&str, Action)] = &[
    ("start", Action::Start),
    ("stop", Action::Stop),
    ("monitor", Action::Monitor),
    ("meta-data", Action::MetaData),
    ("validate-all", Action::Validate),
    ("reload-agent", Action::ReloadAgent),
];

/// OCF words that are not documented as actions of their own (shell agents accept them).
const OCF_ALIASES: &[(&str, Action)] = &[("status", Action::Monitor)];

/// The Clusterware ACTION_SCRIPT words, in the order they are documented; any other word is
/// answered with success ([`Action::Ignored`]).
pub const CRS_WORDS: &[(&str, Action)] = &[
    ("start", Action::Start),
    ("stop", Action::Stop),
    ("check", Action::Monitor),
    ("clean", Action::Clean),
    ("abort", Action::Abort),
    ("meta-data", Action::MetaData),
];

/// The word people type for the pre-flight (`cloudha vip check`): validate-all at depth 10.
pub const PREFLIGHT_WORD: &str = "check";

fn find(words: &[(&'static str, Action)], word: &str) -> Option<Action> {
    words.iter().find(|(w, _)| *w == word).map(|(_, a)| *a)
}

fn join(words: &[(&'static str, Action)], skip: &[&str]) -> String {
    words
        .iter()
        .map(|(w, _)| *w)
        .filter(|w| !skip.contains(w))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Action {
    /// An OCF caller's word; an unknown one is OCF_ERR_UNIMPLEMENTED.
    pub fn from_ocf(word: &str) -> Result<Action> {
        find(OCF_WORDS, word)
            .or_else(|| find(OCF_ALIASES, word))
            .ok_or_else(|| {
                Error::unimplemented(format!(
                    "action {} is not implemented (supported: {})",
                    shown(word),
                    join(OCF_WORDS, &[])
                ))
            })
    }

    /// A Clusterware word; words we have nothing to do for are [`Action::Ignored`].
    pub fn from_crs(word: &str) -> Action {
        find(CRS_WORDS, word).unwrap_or(Action::Ignored)
    }

    /// The declared action whose timeout bounds this one: a Clusterware clean, abort or other
    /// word is bounded like a stop.
    pub fn declared_as(self) -> Action {
        match self {
            Action::Clean | Action::Abort | Action::Ignored => Action::Stop,
            a => a,
        }
    }

    /// The OCF word of the declared action ([`Action::declared_as`]).
    pub fn word(self) -> &'static str {
        let decl = self.declared_as();
        OCF_WORDS
            .iter()
            .find(|(_, a)| *a == decl)
            .map_or("stop", |(w, _)| *w)
    }

    /// The Clusterware timeout attribute's word (`_CRS_<WORD>_TIMEOUT`), for the actions that
    /// have one.
    pub fn crs_timeout_word(self) -> Option<&'static str> {
        match self {
            Action::Start => Some("START"),
            Action::Stop => Some("STOP"),
            Action::Monitor => Some("CHECK"),
            Action::Clean => Some("CLEAN"),
            _ => None,
        }
    }
}

/// The words `cloudha <agent> <ACTION>` takes, for its help text.
pub fn cli_help() -> String {
    format!(
        "{}; {PREFLIGHT_WORD}: the pre-flight (validate-all at depth 10) for people \
         (Clusterware: {})",
        join(OCF_WORDS, &[]),
        join(CRS_WORDS, &["meta-data"])
    )
}

/// The words a person may type for an agent, in documented order: the OCF ones it advertises
/// (`reload-agent` only with a reloadable parameter), then the ones only Clusterware uses.
pub fn typed_words(reloadable: bool) -> Vec<&'static str> {
    let ocf = OCF_WORDS
        .iter()
        .filter(|(_, a)| reloadable || *a != Action::ReloadAgent)
        .map(|(w, _)| *w);
    let crs = CRS_WORDS
        .iter()
        .map(|(w, _)| *w)
        .filter(|w| OCF_WORDS.iter().all(|(o, _)| o != w));
    ocf.chain(crs).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(Action::from_ocf("status").unwrap(), Action::Monitor);
        assert_eq!(Action::from_crs("check"), Action::Monitor);
        assert_eq!(Action::from_crs("relocate"), Action::Ignored);
        assert_eq!(Action::Clean.word(), "stop");
        assert_eq!(Action::Validate.word(), "validate-all");
        let e = Action::from_ocf("promote").unwrap_err();
        assert_eq!(
            e.message,
            "action 'promote' is not implemented (supported: start, stop, monitor, meta-data, \
             validate-all, reload-agent)"
        );
        assert_eq!(
            cli_help(),
            "start, stop, monitor, meta-data, validate-all, reload-agent; check: the pre-flight \
             (validate-all at depth 10) for people (Clusterware: start, stop, check, clean, abort)"
        );
        assert_eq!(
            typed_words(false),
            [
                "start",
                "stop",
                "monitor",
                "meta-data",
                "validate-all",
                "check",
                "clean",
                "abort"
            ]
        );
    }
}
