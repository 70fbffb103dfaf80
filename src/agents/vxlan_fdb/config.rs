//! Parsing the parameters' lists: peers (addresses or host names), overlay addresses with
//! their prefix, per-node address lists.

use std::net::IpAddr;

use crate::error::{Error, Result, shown};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Peer {
    Addr(IpAddr),
    Name(String),
}

/// One overlay address, for every node or for the node with this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OverlayAddr {
    pub(super) key: Option<String>,
    pub(super) ip: IpAddr,
    pub(super) prefix: u8,
}

pub(super) fn check_unicast(param: &str, ip: IpAddr) -> Result<IpAddr> {
    match crate::agents::checks::never_unicast(ip) {
        Some(w) => Err(Error::config(format!(
            "{param}: {ip} is {w}; a unicast address is needed"
        ))),
        None => Ok(ip),
    }
}

pub(super) fn check_name(param: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{param}: {} is neither an IP address nor a valid host name",
            shown(name)
        )))
    }
}

/// Split a list on spaces and commas.
pub(super) fn words(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
}

pub(super) fn parse_peer(param: &str, word: &str) -> Result<Peer> {
    match word.parse::<IpAddr>() {
        Ok(ip) => Ok(Peer::Addr(check_unicast(param, ip)?)),
        Err(_) if word.contains(':') || word.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            Err(Error::config(format!(
                "{param}: {} is not a valid IPv4 or IPv6 address",
                shown(word)
            )))
        }
        Err(_) => {
            check_name(param, word)?;
            Ok(Peer::Name(word.to_string()))
        }
    }
}

pub(super) fn parse_cidr(raw: &str) -> Result<(IpAddr, u8)> {
    let Some((ip, prefix)) = raw.split_once('/') else {
        return Err(Error::config(format!(
            "address={} needs a prefix length, e.g. 10.99.0.1/24",
            shown(raw)
        )));
    };
    let ip: IpAddr = ip.parse().map_err(|_| {
        Error::config(format!(
            "address={}: {} is not an IP address",
            shown(raw),
            shown(ip)
        ))
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=max).contains(p))
        .ok_or_else(|| {
            Error::config(format!(
                "address={}: the prefix length must be between 1 and {max}",
                shown(raw)
            ))
        })?;
    check_unicast("address", ip)?;
    Ok((ip, prefix))
}

pub(super) fn parse_addresses(raw: &str) -> Result<Vec<OverlayAddr>> {
    let mut out = Vec::new();
    for w in words(raw) {
        let (key, cidr) = match w.split_once('=') {
            Some((k, c)) => {
                if k.parse::<IpAddr>().is_err() {
                    check_name("address", k)?;
                }
                (Some(k.to_string()), c)
            }
            None => (None, w),
        };
        let (ip, prefix) = parse_cidr(cidr)?;
        if out.iter().any(|a: &OverlayAddr| a.ip == ip) {
            return Err(Error::config(format!(
                "address: {ip} is given twice; each node needs its own overlay address"
            )));
        }
        out.push(OverlayAddr { key, ip, prefix });
    }
    let keyed = out.iter().filter(|a| a.key.is_some()).count();
    if out.len() > 1 && keyed != out.len() {
        return Err(Error::config(
            "address: several addresses must each name their node as KEY=ADDRESS/PREFIX \
             (KEY: the node's underlay address or host name)",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;

    #[test]
    fn names_the_kernel_would_rewrite_are_refused() {
        for (k, v) in [("ifname", "vx%d"), ("bridge", "br%d"), ("dev", "eth%d")] {
            let Err(e) = agent(&[("vni", "10"), ("peers", "192.168.77.2"), (k, v)]) else {
                panic!("{k}={v} was accepted");
            };
            assert_eq!(e.kind, Kind::Config, "{k}");
            assert!(e.message.contains("template"), "{k}: {}", e.message);
        }
        // And the host refuses to create one whatever the caller checked.
        assert_eq!(node1().add_bridge("x%d").unwrap_err().kind, Kind::Config);
    }

    #[test]
    fn nonsense_is_refused_at_build() {
        for (pairs, needle) in [
            (vec![("vni", "10")], "peers is empty"),
            (vec![("vni", "0"), ("peers", "10.0.0.1")], "between 1 and"),
            (
                vec![("vni", "10"), ("peers", "10.0.0.300")],
                "not a valid IPv4",
            ),
            (vec![("vni", "10"), ("peers", "224.0.0.1")], "multicast"),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1 fd00::1")],
                "mix IPv4 and IPv6",
            ),
            (
                vec![("vni", "10"), ("peers", "bad_name!")],
                "valid host name",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("dstport", "0")],
                "between 1",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("address", "10.99.0.1"),
                ],
                "prefix",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("address", "10.99.0.1/33"),
                ],
                "between 1 and 32",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("address", "10.99.0.1/24 10.99.0.2/24"),
                ],
                "KEY=ADDRESS",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("ifname", "averyveryverylongname"),
                ],
                "longer than 15",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("bridge", "vxlan10")],
                "own name",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("peers_from", "dns")],
                "not one of",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("mtu", "40")],
                "between 68",
            ),
        ] {
            let e = agent(&pairs).err().expect("must be refused");
            assert_eq!(e.kind, Kind::Config, "{pairs:?}");
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
        }
    }
}
