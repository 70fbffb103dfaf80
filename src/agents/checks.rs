//! Checks every agent shares: interface names, addresses that can never be a managed address,
//! and the "named interface or the one routing there" link picker. One wording for each, so
//! the agents refuse the same things in the same words.

use std::net::IpAddr;

use crate::error::{Error, Result, shown};
use crate::host::{Host, Link, MAX_IFNAME};

/// Refuse interface names the kernel would refuse or rewrite, with a reason a person can act
/// on. Follows the kernel's `dev_valid_name` (non-empty, shorter than IFNAMSIZ bytes, not "."
/// or "..", no '/', ':' or whitespace), plus '%': RTM_NEWLINK treats it as a template
/// (`vx%d` becomes `vx0`), so the device would be created under a name nobody tracks. Every
/// interface-name parameter of every agent goes through here.
pub fn check_ifname(param: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::config(format!(
            "{param}={} is not a valid interface name: {why}",
            shown(name)
        )))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_IFNAME {
        return bad(&format!("longer than {MAX_IFNAME} bytes"));
    }
    if name == "." || name == ".." {
        return bad("reserved name");
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '%') || c.is_whitespace() || c.is_control())
    {
        let why = if c == '%' {
            "contains '%', which the kernel treats as a name template".to_string()
        } else {
            format!("contains {c:?}")
        };
        return bad(&why);
    }
    Ok(())
}

/// What makes `ip` unusable as any node's unicast address (unspecified, multicast, loopback,
/// the IPv4 broadcast address, IPv6 link-local), in the words the refusals use; `None` when it
/// is none of these. Agents that refuse more (IPv4 link-local, IPv4-mapped) add their own.
pub fn never_unicast(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        _ if ip.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("a link-local address"),
        _ => None,
    }
}

/// The refusal for an interface parameter naming an interface this node does not have.
pub fn no_such_nic(name: &str) -> Error {
    Error::not_installed(format!("interface nic={name} does not exist on this node"))
}

/// The interface an agent works on: the one named (`missing` says why it is absent), else the
/// one `index` finds (a connected route, the route to a peer...).
pub fn pick_link(
    host: &dyn Host,
    named: Option<&str>,
    missing: impl FnOnce(&str) -> Error,
    index: impl FnOnce() -> Result<u32>,
) -> Result<Link> {
    if let Some(name) = named {
        return host.link_by_name(name)?.ok_or_else(|| missing(name));
    }
    let index = index()?;
    host.link_by_index(index)?
        .ok_or_else(|| Error::transient(format!("interface {index} vanished while looking it up")))
}

/// The check of both agents: local_address=false with expect_local_address, and the address is
/// on no interface of this node.
pub fn owner_took_it_away(expect: bool, host: &dyn Host, ip: IpAddr) -> Result<bool> {
    if !expect {
        return Ok(false);
    }
    let gone = !host.addrs()?.iter().any(|a| a.ip == ip);
    if gone {
        tracing::warn!(
            "{ip} is not configured on this node (expect_local_address): not running here"
        );
    }
    Ok(gone)
}

/// expect_local_address without local_address=false means nothing: refuse it.
pub fn check_expect(local_address: bool, expect: bool) -> Result<()> {
    if local_address && expect {
        return Err(Error::config(
            "expect_local_address=true applies only with local_address=false (with \
             local_address=true the resource configures the address itself)",
        ));
    }
    Ok(())
}
