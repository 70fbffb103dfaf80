//! Parameters declared once, as data. Everything a caller sees about a parameter — meta-data
//! XML, `--help`, man pages, Clusterware attribute names, validation messages — is derived
//! from these declarations.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use crate::error::{Error, Result, shown};

/// The type of a parameter, as OCF 1.1 knows them.
#[derive(Debug, Clone, Copy)]
pub enum Type {
    String,
    /// An integer within an inclusive range.
    Integer {
        min: i64,
        max: i64,
    },
    Boolean,
    /// One of a fixed set of words.
    Select(&'static [&'static str]),
}

impl Type {
    pub fn ocf_name(&self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Integer { .. } => "integer",
            Type::Boolean => "boolean",
            Type::Select(_) => "select",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Type,
    pub default: Option<&'static str>,
    pub required: bool,
    /// Resources in the same unique group must not share the combined value (OCF 1.1).
    pub unique_group: Option<&'static str>,
    /// Changing it needs only `reload-agent`, not a restart.
    pub reloadable: bool,
    /// The one-letter command-line option of a fence agent (`-o`, `-n`), if it has one.
    pub short: Option<char>,
    /// The caller always passes it (the fencer's action and plug): meta-data lists it as
    /// required, validation does not insist (nodename stands in for plug).
    pub caller_supplies: bool,
    /// The newer parameter that replaces this one (meta-data: deprecated, and `obsoletes` on
    /// the replacement).
    pub replaced_by: Option<&'static str>,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
}

impl Param {
    /// A string parameter with no default; the other fields are set with the builder methods.
    pub const fn new(name: &'static str, shortdesc: &'static str, longdesc: &'static str) -> Self {
        Param {
            name,
            ty: Type::String,
            default: None,
            required: false,
            unique_group: None,
            reloadable: false,
            short: None,
            caller_supplies: false,
            replaced_by: None,
            shortdesc,
            longdesc,
        }
    }
    pub const fn ty(mut self, ty: Type) -> Self {
        self.ty = ty;
        self
    }
    pub const fn default(mut self, v: &'static str) -> Self {
        self.default = Some(v);
        self
    }
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub const fn unique_group(mut self, g: &'static str) -> Self {
        self.unique_group = Some(g);
        self
    }
    pub const fn reloadable(mut self) -> Self {
        self.reloadable = true;
        self
    }
    pub const fn short(mut self, c: char) -> Self {
        self.short = Some(c);
        self
    }
    pub const fn caller_supplies(mut self) -> Self {
        self.caller_supplies = true;
        self
    }
    pub const fn replaced_by(mut self, newer: &'static str) -> Self {
        self.replaced_by = Some(newer);
        self
    }

    /// The Oracle Clusterware attribute that carries this parameter (`_CRS_<NAME>`).
    pub fn crs_attribute(&self) -> String {
        self.name.to_ascii_uppercase()
    }

    /// Check one raw value against the declared type.
    fn check(&self, raw: &str) -> Result<()> {
        match self.ty {
            Type::String => Ok(()),
            Type::Integer { min, max } => match raw.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(()),
                Ok(n) => Err(Error::config(format!(
                    "parameter {}={n} is out of range: it must be between {min} and {max}",
                    self.name
                ))),
                Err(_) => Err(Error::config(format!(
                    "parameter {}={} is not a whole number",
                    self.name,
                    shown(raw)
                ))),
            },
            Type::Boolean => parse_bool(raw).map(|_| ()).ok_or_else(|| {
                Error::config(format!(
                    "parameter {}={} is not a boolean (use true or false)",
                    self.name,
                    shown(raw)
                ))
            }),
            Type::Select(options) => {
                if options.contains(&raw) {
                    Ok(())
                } else {
                    Err(Error::config(format!(
                        "parameter {}={} is not one of: {}",
                        self.name,
                        shown(raw),
                        options.join(", ")
                    )))
                }
            }
        }
    }
}

/// What a Rust type needs of the declaration it is read from (checked when the [`Key`] is
/// declared, at compile time).
#[derive(Debug, Clone, Copy)]
pub enum Want {
    Text,
    Bool,
    /// An integer whose declared range must fit `min..=max`.
    Int {
        min: i128,
        max: i128,
    },
    /// One of these words (the declaration's type becomes `Select` of them).
    Word(&'static [&'static str]),
}

/// A type a parameter's value can be read as. `Default` is only what an unset value with no
/// default reads as, which [`Key::new`] rules out for every non-optional key.
pub trait Plain: Sized + Default {
    const WANT: Want;
    fn parse(raw: &str) -> Option<Self>;
}

impl Plain for String {
    const WANT: Want = Want::Text;
    fn parse(raw: &str) -> Option<Self> {
        Some(raw.to_string())
    }
}

impl Plain for bool {
    const WANT: Want = Want::Bool;
    fn parse(raw: &str) -> Option<Self> {
        parse_bool(raw)
    }
}

macro_rules! plain_int {
    ($($t:ty),*) => {$(
        impl Plain for $t {
            const WANT: Want = Want::Int { min: <$t>::MIN as i128, max: <$t>::MAX as i128 };
            fn parse(raw: &str) -> Option<Self> {
                raw.trim().parse().ok()
            }
        }
    )*};
}
plain_int!(u8, u16, u32, u64, i64);

/// Whole seconds.
impl Plain for Duration {
    const WANT: Want = Want::Int {
        min: 0,
        max: u64::MAX as i128,
    };
    fn parse(raw: &str) -> Option<Self> {
        raw.trim().parse().ok().map(Duration::from_secs)
    }
}

/// A parameter that takes one of a fixed set of words, read as an enum.
pub trait Choice: Sized + Copy + Default + 'static {
    /// The words, in the order meta-data lists them.
    const WORDS: &'static [&'static str];
    /// The value for each word of [`Choice::WORDS`], in the same order.
    const VALUES: &'static [Self];
}

/// Declares an enum and makes it a [`Choice`], each variant next to its parameter word:
/// `choice! { enum SourceDest { #[default] Check = "check", ... } }`.
#[macro_export]
macro_rules! choice {
    ($(#[$m:meta])* $vis:vis enum $t:ident {
        $($(#[$vm:meta])* $v:ident = $w:literal),+ $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        $vis enum $t {
            $($(#[$vm])* $v),+
        }
        impl $crate::params::Choice for $t {
            const WORDS: &'static [&'static str] = &[$($w),+];
            const VALUES: &'static [Self] = &[$($t::$v),+];
        }
        impl $t {
            /// The parameter word of this value.
            #[allow(dead_code)]
            pub fn word(self) -> &'static str {
                match self {
                    $($t::$v => $w),+
                }
            }
        }
        impl $crate::params::Plain for $t {
            const WANT: $crate::params::Want = $crate::params::Want::Word(
                <$t as $crate::params::Choice>::WORDS,
            );
            fn parse(raw: &str) -> Option<Self> {
                <$t as $crate::params::Choice>::WORDS
                    .iter()
                    .position(|w| *w == raw)
                    .map(|i| <$t as $crate::params::Choice>::VALUES[i])
            }
        }
    };
}

/// A type a [`Key`] reads: a [`Plain`] type, or `Option` of one for a parameter that may be
/// unset.
pub trait FromValue: Sized {
    const WANT: Want;
    /// Whether an unset value with no default is allowed (it reads as `None`).
    const OPTIONAL: bool;
    fn read(raw: Option<&str>) -> Self;
}

impl<T: Plain> FromValue for T {
    const WANT: Want = T::WANT;
    const OPTIONAL: bool = false;
    fn read(raw: Option<&str>) -> Self {
        raw.and_then(T::parse).unwrap_or_default()
    }
}

impl<T: Plain> FromValue for Option<T> {
    const WANT: Want = T::WANT;
    const OPTIONAL: bool = true;
    fn read(raw: Option<&str>) -> Self {
        raw.and_then(T::parse)
    }
}

/// An agent's parameter list built from groups, so a group shared by several agents (the
/// cloud API parameters) is written once: `params![&[IP.param], &cloud::params::AWS_API]`.
#[macro_export]
macro_rules! params {
    ($($part:expr),+ $(,)?) => {{
        const PARTS: &[&[$crate::params::Param]] = &[$($part),+];
        const LIST: [$crate::params::Param; $crate::params::total(PARTS)] =
            $crate::params::join(PARTS);
        &LIST
    }};
}

/// How many parameters the groups hold, for [`params!`].
pub const fn total(parts: &[&[Param]]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// The groups one after the other, for [`params!`].
pub const fn join<const N: usize>(parts: &[&[Param]]) -> [Param; N] {
    let mut out = [Param::new("", "", ""); N];
    let (mut n, mut i) = (0, 0);
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[n] = parts[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == N, "params!: the count does not match the groups");
    out
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A parameter declaration with the Rust type its value is read as: the one name agents read
/// a value by ([`Values::get`]), so a renamed parameter or a changed default cannot diverge
/// from what the code reads.
#[derive(Debug, Clone, Copy)]
pub struct Key<T> {
    pub param: Param,
    ty: PhantomData<fn() -> T>,
}

impl<T: FromValue> Key<T> {
    /// Declare a key. A declaration that does not fit `T` (a range wider than the type, a
    /// non-optional type with neither default nor `required`, a default that is not one of
    /// the words) stops the build, since keys are constants.
    pub const fn new(param: Param) -> Self {
        let mut param = param;
        assert!(
            T::OPTIONAL || param.default.is_some() || param.required,
            "a parameter read as a plain value needs a default or `required`"
        );
        match (T::WANT, param.ty) {
            (Want::Text, Type::String | Type::Select(_)) | (Want::Bool, Type::Boolean) => {}
            (Want::Int { min, max }, Type::Integer { min: lo, max: hi }) => {
                assert!(
                    lo as i128 >= min && hi as i128 <= max,
                    "the declared range does not fit the type"
                );
            }
            (Want::Word(words), Type::String | Type::Select(_)) => {
                if let Some(d) = param.default {
                    let mut i = 0;
                    while i < words.len() && !str_eq(words[i], d) {
                        i += 1;
                    }
                    assert!(i < words.len(), "the default is not one of the words");
                }
                param.ty = Type::Select(words);
            }
            _ => panic!("the declared type does not fit the Rust type"),
        }
        Key {
            param,
            ty: PhantomData,
        }
    }
}

/// ocf_is_true's spellings, so values written for shell agents keep working.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// Where a raw value came from, for messages that point the admin at the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    /// A `name=value` line on standard input (the fence-agents contract).
    Stdin,
    Env(String),
    File(String),
    CommandLine,
}

/// Raw values gathered from the caller, before validation.
#[derive(Debug, Default, Clone)]
pub struct Raw {
    values: BTreeMap<String, (String, Source)>,
}

impl Raw {
    pub fn set(&mut self, name: &str, value: &str, source: Source) {
        self.values
            .insert(name.to_string(), (value.to_string(), source));
    }
    pub fn get(&self, name: &str) -> Option<&(String, Source)> {
        self.values.get(name)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// Validated values: every declared parameter that has a value or a default, type-checked.
#[derive(Debug, Clone)]
pub struct Values {
    decls: &'static [Param],
    values: BTreeMap<&'static str, String>,
}

impl Values {
    /// Check raw values against the declarations: unknown names from files and the command line
    /// are refused (typos), unknown environment variables are ignored (Pacemaker adds its own).
    pub fn validate(decls: &'static [Param], raw: &Raw) -> Result<Values> {
        for name in raw.names() {
            if decls.iter().all(|p| p.name != name) {
                let (_, source) = raw.get(name).expect("name came from raw");
                let known: Vec<&str> = decls.iter().map(|p| p.name).collect();
                let place = match source {
                    Source::File(path) => format!(" in {path}"),
                    Source::CommandLine => " on the command line".to_string(),
                    _ => String::new(),
                };
                if !matches!(source, Source::Env(_)) {
                    return Err(Error::config(format!(
                        "unknown parameter {}{place} (known: {})",
                        shown(name),
                        known.join(", ")
                    )));
                }
            }
        }
        let mut values = BTreeMap::new();
        for p in decls {
            let value = match raw.get(p.name) {
                // An empty value means "not set", as in shell agents.
                Some((v, _)) if !v.trim().is_empty() => Some(v.trim().to_string()),
                _ => p.default.map(str::to_string),
            };
            match value {
                Some(v) => {
                    p.check(&v)?;
                    values.insert(p.name, v);
                }
                None if p.required => {
                    return Err(Error::config(format!(
                        "required parameter '{}' is not set ({})",
                        p.name, p.shortdesc
                    )));
                }
                None => {}
            }
        }
        Ok(Values { decls, values })
    }

    /// These values as another agent's (`decls`), for an agent that runs another's checks:
    /// the names both declare are carried over, the rest take `decls`' defaults.
    pub fn as_agent(&self, decls: &'static [Param]) -> Result<Values> {
        let mut raw = Raw::default();
        for (name, value) in &self.values {
            if decls.iter().any(|p| p.name == *name) {
                raw.set(name, value, Source::Default);
            }
        }
        Values::validate(decls, &raw)
    }

    /// Whether this agent declares `key` (shared readers such as the cloud options read only
    /// the keys an agent takes).
    pub fn declares<T>(&self, key: &Key<T>) -> bool {
        self.decls.iter().any(|p| p.name == key.param.name)
    }

    /// The value of `key`, typed, with its declared default.
    pub fn get<T: FromValue>(&self, key: &Key<T>) -> T {
        debug_assert!(
            self.declares(key),
            "parameter {} is read but not declared by this agent",
            key.param.name
        );
        T::read(
            self.values
                .get(key.param.name)
                .map(String::as_str)
                .or(key.param.default),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading by string name, which agents no longer do (they read typed keys); kept for
    /// these tests of the untyped declarations.
    impl Values {
        fn str(&self, name: &str) -> Option<&str> {
            self.values.get(name).map(String::as_str)
        }
        fn int(&self, name: &str) -> Option<i64> {
            self.str(name).and_then(|v| v.parse().ok())
        }
        fn bool(&self, name: &str) -> Option<bool> {
            self.str(name).and_then(parse_bool)
        }
    }

    static DECLS: &[Param] = &[
        Param::new("ip", "address", "the address").required(),
        Param::new("count", "n", "n")
            .ty(Type::Integer { min: 0, max: 10 })
            .default("3"),
        Param::new("flag", "f", "f")
            .ty(Type::Boolean)
            .default("false"),
        Param::new("mode", "m", "m")
            .ty(Type::Select(&["a", "b"]))
            .default("a"),
    ];

    fn raw(pairs: &[(&str, &str)]) -> Raw {
        let mut r = Raw::default();
        for (k, v) in pairs {
            r.set(k, v, Source::CommandLine);
        }
        r
    }

    #[test]
    fn defaults_and_types() {
        let v = Values::validate(DECLS, &raw(&[("ip", "x"), ("flag", "yes")])).unwrap();
        assert_eq!(v.int("count"), Some(3));
        assert_eq!(v.bool("flag"), Some(true));
        assert_eq!(v.str("mode"), Some("a"));
    }

    #[test]
    fn refusals() {
        for (pairs, needle) in [
            (&[][..], "required parameter 'ip'"),
            (&[("ip", "x"), ("count", "11")][..], "between 0 and 10"),
            (&[("ip", "x"), ("count", "z")][..], "not a whole number"),
            (&[("ip", "x"), ("flag", "maybe")][..], "not a boolean"),
            (&[("ip", "x"), ("mode", "c")][..], "not one of: a, b"),
            (
                &[("ip", "x"), ("bogus", "1")][..],
                "unknown parameter 'bogus'",
            ),
        ] {
            let e = Values::validate(DECLS, &raw(pairs)).unwrap_err();
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
            assert_eq!(e.kind, crate::error::Kind::Config);
        }
    }

    crate::choice! {
        enum Mode {
            #[default]
            A = "a",
            B = "b",
        }
    }

    const IP: Key<String> = Key::new(Param::new("ip", "address", "the address").required());
    const COUNT: Key<u8> = Key::new(
        Param::new("count", "n", "n")
            .ty(Type::Integer { min: 0, max: 10 })
            .default("3"),
    );
    const FLAG: Key<bool> = Key::new(
        Param::new("flag", "f", "f")
            .ty(Type::Boolean)
            .default("false"),
    );
    const MODE: Key<Mode> = Key::new(Param::new("mode", "m", "m").default("a"));
    const NOTE: Key<Option<String>> = Key::new(Param::new("note", "n", "n"));
    const WAIT: Key<Option<Duration>> =
        Key::new(Param::new("wait", "w", "w").ty(Type::Integer { min: 0, max: 60 }));
    static KEYED: &[Param] = &[
        IP.param,
        COUNT.param,
        FLAG.param,
        MODE.param,
        NOTE.param,
        WAIT.param,
    ];

    #[test]
    fn typed_keys_read_the_declared_type_and_default() {
        let v = Values::validate(KEYED, &raw(&[("ip", " x "), ("mode", "b")])).unwrap();
        assert_eq!(v.get(&IP), "x");
        assert_eq!(v.get(&COUNT), 3);
        assert!(!v.get(&FLAG));
        assert_eq!(v.get(&MODE), Mode::B);
        assert_eq!(v.get(&NOTE), None);
        assert_eq!(v.get(&WAIT), None);
        let v = Values::validate(
            KEYED,
            &raw(&[
                ("ip", "x"),
                ("count", "10"),
                ("flag", "on"),
                ("note", "hi"),
                ("wait", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(v.get(&COUNT), 10);
        assert!(v.get(&FLAG));
        assert_eq!(v.get(&MODE), Mode::A);
        assert_eq!(v.get(&NOTE).as_deref(), Some("hi"));
        assert_eq!(v.get(&WAIT), Some(Duration::from_secs(7)));
        // A choice's words become the declared select, so meta-data lists them.
        assert!(matches!(MODE.param.ty, Type::Select(["a", "b"])));
        let e = Values::validate(KEYED, &raw(&[("ip", "x"), ("mode", "c")])).unwrap_err();
        assert!(e.message.contains("not one of: a, b"), "{}", e.message);
    }

    #[test]
    fn unknown_env_is_ignored() {
        let mut r = raw(&[("ip", "x")]);
        r.set(
            "CRM_meta_timeout",
            "20000",
            Source::Env("OCF_RESKEY_CRM_meta_timeout".into()),
        );
        assert!(Values::validate(DECLS, &r).is_ok());
    }
}
