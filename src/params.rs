//! Parameters declared once, as data. Everything a caller sees about a parameter — meta-data
//! XML, `--help`, man pages, Clusterware attribute names, validation messages — is derived
//! from these declarations.

use std::collections::BTreeMap;

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
        Ok(Values { values })
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
    /// Integer parameters are range-checked by `validate`, so this cannot fail for them.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.str(name).and_then(|v| v.parse().ok())
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.str(name).and_then(parse_bool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
