//! peers_from=corosync: the ring0_addr of every node of the cluster's corosync.conf nodelist.

use std::path::Path;

use super::config::{Peer, parse_peer};
use crate::error::{Error, Result, shown};

/// The ring0_addr of every node in a corosync.conf nodelist.
pub fn corosync_ring0(text: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut pending: Option<String> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line == "{" {
            stack.push(pending.take().unwrap_or_default());
            continue;
        }
        if let Some(name) = line.strip_suffix('{') {
            stack.push(name.trim().to_string());
            continue;
        }
        if line.starts_with('}') {
            stack.pop();
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => {
                let in_node = stack.len() == 2 && stack[0] == "nodelist" && stack[1] == "node";
                if in_node && k.trim() == "ring0_addr" {
                    out.push(v.trim().trim_matches('"').to_string());
                }
            }
            None => pending = Some(line.to_string()),
        }
    }
    out
}

/// corosync.conf as text: a regular file of bounded size, read without blocking on a FIFO
/// (it would hang the action past its deadline).
fn read_corosync(path: &Path) -> std::io::Result<String> {
    String::from_utf8(crate::files::read_regular(path, true)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

pub(super) fn corosync_peers(path: &Path) -> Result<Vec<Peer>> {
    let shown_path = shown(&path.display().to_string());
    let text = match read_corosync(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_installed(format!(
                "peers_from=corosync: {shown_path} does not exist on this node"
            )));
        }
        Err(e) => {
            return Err(Error::host_args(format!(
                "peers_from=corosync: cannot read {shown_path}: {e}"
            )));
        }
    };
    let addrs = corosync_ring0(&text);
    if addrs.is_empty() {
        return Err(Error::host_args(format!(
            "peers_from=corosync: {shown_path} has no nodelist with ring0_addr entries"
        )));
    }
    let what = format!("ring0_addr in {shown_path}");
    addrs.iter().map(|a| parse_peer(&what, a)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    #[test]
    fn corosync_nodelist() {
        let conf = "totem {\n  version: 2\n  interface {\n    ring0_addr: 10.0.0.99\n  }\n}\n\
                    nodelist {\n  node {\n    ring0_addr: 192.168.77.1 # me\n    name: n1\n  }\n\
                    node\n  {\n    name: n2\n    ring0_addr: n2.example\n  }\n  node {\n\
                    ring0_addr: fd00::3\n  }\n}\nquorum {\n provider: corosync_votequorum\n}\n";
        assert_eq!(
            corosync_ring0(conf),
            ["192.168.77.1", "n2.example", "fd00::3"]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corosync.conf");
        std::fs::write(
            &path,
            "nodelist {\n node {\n  ring0_addr: 192.168.77.1\n }\n node {\n  ring0_addr: n2\n }\n}\n",
        )
        .unwrap();
        let host = node1();
        host.names
            .borrow_mut()
            .insert("n2".into(), ips(&["fd00::2", "192.168.77.2"]));
        let mut a = agent(&[
            ("vni", "10"),
            ("peers_from", "corosync"),
            ("peers", "192.168.77.5"),
        ])
        .unwrap();
        a.corosync = true;
        let with_conf = |conf: &Path, f: &dyn Fn(&Ctx)| {
            crate::agents::testing::TestCtx::new(&host).run(|cx| {
                let paths = crate::agents::Paths {
                    corosync_conf: conf.to_path_buf(),
                    ..cx.paths.clone()
                };
                f(&Ctx {
                    paths: &paths,
                    host: cx.host,
                    check_level: cx.check_level,
                    probe: cx.probe,
                    deadline: cx.deadline,
                    cloud: None,
                    routes: None,
                })
            })
        };
        with_conf(&path, &|cx| a.start(cx).unwrap());
        let index = vxlan(&host, "vxlan10").0.index;
        assert_eq!(host.flood(index), ips(&["192.168.77.2", "192.168.77.5"]));
        with_conf(&dir.path().join("missing.conf"), &|cx| {
            assert_eq!(a.monitor(cx).unwrap_err().kind, Kind::NotInstalled)
        });
        std::fs::write(&path, "totem {\n}\n").unwrap();
        let e = std::cell::RefCell::new(None);
        with_conf(&path, &|cx| {
            *e.borrow_mut() = Some(a.monitor(cx).unwrap_err())
        });
        let e = e.into_inner().unwrap();
        assert!(e.message.contains("no nodelist"), "{}", e.message);
    }
}
