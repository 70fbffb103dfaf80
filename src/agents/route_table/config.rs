//! route-table's own parameter syntax: the overlay address (with its prefix) and the list of
//! route tables, each refused with a reason an admin can act on.

use std::net::{IpAddr, Ipv4Addr};

use crate::agents::checks::never_unicast;
use crate::cloud::routes::{Dest, Selection};
use crate::error::{Error, Result, shown};

/// `a.b.c.d` or `a.b.c.d/len`: the address configured locally and the route's destination.
pub(super) fn parse_ip(raw: &str) -> Result<(Ipv4Addr, Dest)> {
    let (addr, len) = match raw.split_once('/') {
        Some((a, l)) => {
            let len: u8 = l.parse().ok().filter(|l| *l <= 32).ok_or_else(|| {
                Error::config(format!(
                    "ip={}: {} is not a prefix length 0..32",
                    shown(raw),
                    shown(l)
                ))
            })?;
            (a, len)
        }
        None => (raw, 32),
    };
    let ip: Ipv4Addr = addr.parse().map_err(|_| {
        let v6 = addr.parse::<std::net::Ipv6Addr>().is_ok();
        Error::config(if v6 {
            format!(
                "ip={}: route-table manages IPv4 overlay addresses only",
                shown(raw)
            )
        } else {
            format!(
                "ip={} is not an IPv4 address (a.b.c.d or a.b.c.d/prefix)",
                shown(raw)
            )
        })
    })?;
    let why = never_unicast(IpAddr::V4(ip)).or(ip
        .is_link_local()
        .then_some("a link-local address (instance metadata lives there)"));
    if let Some(w) = why {
        return Err(Error::config(format!(
            "ip={ip} is {w} and cannot be an overlay IP"
        )));
    }
    if len < 8 {
        return Err(Error::config(format!(
            "ip={}: a /{len} would send a large part of the internet to this node; use the \
             overlay address or a small block",
            shown(raw)
        )));
    }
    Ok((ip, Dest::of(ip, len)))
}

pub(super) fn parse_tables(raw: &str) -> Result<Selection> {
    let words: Vec<&str> = raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [] => Err(Error::config(
            "route_tables is empty: list the route tables (rtb-...) or say auto",
        )),
        ["auto"] => Ok(Selection::Auto),
        _ => {
            let mut ids: Vec<String> = Vec::new();
            for w in words {
                let hex = w.strip_prefix("rtb-").unwrap_or("");
                if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(Error::config(format!(
                        "route_tables: {} is not a route table id (rtb-...); give ids \
                         separated by commas, or auto alone",
                        shown(w)
                    )));
                }
                if !ids.iter().any(|i| i == w) {
                    ids.push(w.to_string());
                }
            }
            Ok(Selection::Ids(ids))
        }
    }
}
