"""The vip agent (cloud=none) against a real kernel, in network namespaces.

Nodes A, B, C hang on one bridge (in a hub namespace). The agent runs inside a node's namespace
with Pacemaker's environment (OCF_RESKEY_*, OCF_RA_VERSION 1.1, CRM_meta_timeout).
"""

from __future__ import annotations

import ipaddress
import struct
import time

import pytest

from netns import (Capture, Lab, arp_frames, icmp6_frames, mac_hex, vip, vip_popen, wait_for)

FAMILIES = {
    # family: (node addresses, vip, expected prefix)
    "ipv4": (("10.77.0.1/24", "10.77.0.2/24", "10.77.0.3/24"), "10.77.0.100", 24),
    "ipv6": (("fd77::1/64", "fd77::2/64", "fd77::3/64"), "fd77::100", 64),
}


def three_nodes(lab: Lab, family: str):
    addrs = FAMILIES[family][0]
    return [lab.node(n, a) for n, a in zip("abc", addrs)]


def vip_entries(node, ip):
    return node.has(ip)


def addr_snapshot(node):
    return sorted((a[0], a[1], a[2]) for a in node.addrs())


def outgoing_mentions(frames, node_mac: str, ip: str) -> list[dict]:
    """Frames the node itself sent (PACKET_OUTGOING) that carry the VIP's bytes anywhere."""
    needle = ipaddress.ip_address(ip).packed.hex()
    return [f for f in frames
            if f["pkttype"] == 4 and f["hex"][12:24] == mac_hex(node_mac) and needle in f["hex"]]


def icmp6_checksum_ok(f: dict) -> bool:
    src = ipaddress.IPv6Address(f["src"]).packed
    dst = ipaddress.IPv6Address(f["dst"]).packed
    body = bytes.fromhex(f["icmp_hex"])
    data = src + dst + struct.pack("!I3xB", len(body), 58) + body
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


@pytest.mark.parametrize("family", FAMILIES)
def test_start_monitor_stop_is_real_and_idempotent(family):
    _, ip, prefix = FAMILIES[family]
    with Lab() as lab:
        a, b, _ = three_nodes(lab, family)
        p = dict(ip=ip, cloud="none", arp_count=1)

        r = vip(a, "monitor", **p)
        assert r.rc == 7, r
        assert vip_entries(a, ip) == []

        r = vip(a, "start", **p)
        assert r.rc == 0, r
        got = vip_entries(a, ip)
        print(f"{family}: after start, ip -j addr: {got} (start took {r.elapsed:.3f}s)")
        assert [(g[0], g[1], g[2]) for g in got] == [("eth0", ip, prefix)], got
        if family == "ipv6":
            # Added without DAD: not tentative, and answered at once.
            assert "nodad" in got[0][3] and "tentative" not in got[0][3], got
            ping = b.exec("ping", "-c1", "-W2", ip, check=False)
            assert ping.returncode == 0, ping.stdout + ping.stderr
        else:
            ping = b.exec("ping", "-c1", "-W2", ip, check=False)
            assert ping.returncode == 0, ping.stdout + ping.stderr

        assert vip(a, "monitor", **p).rc == 0
        r = vip(a, "monitor", extra_env={"OCF_RESKEY_CRM_meta_interval": "10000"}, **p)
        assert r.rc == 0, r

        r = vip(a, "start", **p)
        assert r.rc == 0, r
        assert len(vip_entries(a, ip)) == 1, f"second start duplicated: {a.addrs()}"
        assert "already" in r.err, r

        r = vip(a, "stop", **p)
        assert r.rc == 0, r
        assert vip_entries(a, ip) == []
        assert any(x[1] == FAMILIES[family][0][0].split("/")[0] for x in a.addrs()), \
            "stop removed the node's own address"
        assert vip(a, "monitor", **p).rc == 7

        r = vip(a, "stop", **p)
        assert r.rc == 0, r
        assert vip(a, "monitor", **p).rc == 7


def _move(family: str, arp_count: int):
    """VIP on A, C learns A's MAC, move to B; returns observations about C after the move."""
    _, ip, _ = FAMILIES[family]
    with Lab() as lab:
        a, b, c = three_nodes(lab, family)
        mac_a, mac_b, mac_c = a.mac(), b.mac(), c.mac()
        p = dict(ip=ip, cloud="none")

        assert vip(a, "start", **p, arp_count=1).rc == 0
        ping = c.exec("ping", "-c1", "-W2", ip, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        before = c.neigh(ip)
        assert before and before["lladdr"] == mac_a, (before, mac_a)
        time.sleep(1.2)  # past locktime (1 s) of the entry C just confirmed

        assert vip(a, "stop", **p).rc == 0
        cap = Capture(c, 3.0)
        t0 = time.monotonic()
        proc = vip_popen(b, "start", **p, arp_count=arp_count)
        updated_at = None
        while time.monotonic() - t0 < 2.5:
            n = c.neigh(ip)
            if updated_at is None and n and n["lladdr"] == mac_b:
                updated_at = time.monotonic() - t0
            if updated_at is not None and proc.poll() is not None:
                break
            time.sleep(0.005)
        out, err = proc.communicate(timeout=30)
        start_took = time.monotonic() - t0
        assert proc.returncode == 0, err
        after = c.neigh(ip)
        frames = cap.frames()
        return dict(ip=ip, mac_a=mac_a, mac_b=mac_b, mac_c=mac_c, before=before, after=after,
                    updated_at=updated_at, start_took=start_took, frames=frames, err=err)


@pytest.mark.parametrize("family", FAMILIES)
def test_announcement_moves_the_neighbour_entry(family):
    o = _move(family, arp_count=5)
    ip = o["ip"]
    print(f"{family}: C's entry before {o['before']}, after {o['after']}; "
          f"A={o['mac_a']} B={o['mac_b']}")
    print(f"{family}: C's neighbour entry switched to B's MAC "
          f"{o['updated_at'] * 1000 if o['updated_at'] is not None else float('nan'):.0f} ms "
          f"after launching start on B (start returned after {o['start_took'] * 1000:.0f} ms)")
    # C sent nothing about the VIP after the move: the update came from B's announcements.
    assert outgoing_mentions(o["frames"], o["mac_c"], ip) == []
    if family == "ipv4":
        ann = [f for f in arp_frames(o["frames"], ip) if f["sha"] == mac_hex(o["mac_b"])]
        assert len(ann) == 5 and all(f["garp"] and f["op"] == 1 for f in ann), ann
        assert all(f["hex"][:12] == "ffffffffffff" for f in ann)
    else:
        ann = [f for f in icmp6_frames(o["frames"])
               if f["type"] == 136 and f["target"] == ip]
        assert len(ann) == 5, ann
        for f in ann:
            assert f["src_mac"] == o["mac_b"] and f["dst"] == "ff02::1", f
            assert f["dst_mac"] == "33:33:00:00:00:01" and f["hop_limit"] == 255, f
            assert f["flags"] == 0x20, f"override only (not solicited/router): {f['flags']:#x}"
            assert f["options"] == "0201" + mac_hex(o["mac_b"]), f["options"]
            assert icmp6_checksum_ok(f), f
        print(f"ipv6: NA source {ann[0]['src']}, {len(ann)} sent")
    gaps = [round((y["t"] - x["t"]) * 1000) for x, y in zip(ann, ann[1:])]
    print(f"{family}: {len(ann)} announcements seen at C, gaps {gaps} ms")
    assert all(150 <= g <= 400 for g in gaps), gaps
    assert o["after"]["lladdr"] == o["mac_b"], (o["after"], o["mac_b"])
    assert o["updated_at"] is not None and o["updated_at"] < 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_arp_count_zero_sends_nothing(family):
    o = _move(family, arp_count=0)
    ip = o["ip"]
    time.sleep(0.5)
    print(f"{family}: arp_count=0, C's entry after the move: {o['after']}")
    from_b = [f for f in o["frames"] if f["hex"][12:24] == mac_hex(o["mac_b"])]
    if family == "ipv4":
        assert arp_frames(from_b, ip) == []
    else:
        assert [f for f in icmp6_frames(from_b) if f["type"] == 136] == []
    assert o["after"]["lladdr"] == o["mac_a"], "C moved without any announcement?"
    assert o["updated_at"] is None


def test_monitor_on_dead_link_fails_with_a_reason():
    ip = "10.77.0.100"
    with Lab() as lab:
        a, _, _ = three_nodes(lab, "ipv4")
        p = dict(ip=ip, cloud="none", nic="eth0", arp_count=1)
        assert vip(a, "start", **p).rc == 0
        lab.hub.ip("link", "set", a.port, "down")
        wait_for(lambda: not a.carrier(), 5, "carrier loss on A")
        before = addr_snapshot(a)
        for interval in ("0", "10000"):
            r = vip(a, "monitor", extra_env={"OCF_RESKEY_CRM_meta_interval": interval}, **p)
            print(f"dead link, monitor interval={interval}: {r}")
            assert r.rc == 1, r
            reasons = r.reasons()
            assert len(reasons) == 1 and "no carrier" in reasons[0], r.err
        assert addr_snapshot(a) == before, "monitor changed something"
        # Starting on a dead link is refused (this node only) and adds nothing.
        assert vip(a, "stop", **p).rc == 0
        assert a.has(ip) == []
        r = vip(a, "start", **p)
        assert r.rc == 2 and r.reasons(), r
        assert a.has(ip) == []


def test_missing_nic_is_not_installed_and_changes_nothing():
    with Lab() as lab:
        a, _, _ = three_nodes(lab, "ipv4")
        before = addr_snapshot(a)
        r = vip(a, "start", ip="10.77.0.100", cloud="none", nic="eth9")
        print(r)
        assert r.rc == 5, r
        assert any("eth9" in x for x in r.reasons()), r.err
        assert addr_snapshot(a) == before
        assert vip(a, "monitor", ip="10.77.0.100", cloud="none", nic="eth9").rc == 7
        assert vip(a, "stop", ip="10.77.0.100", cloud="none", nic="eth9").rc == 0


@pytest.mark.parametrize("vip_ip,gateway", [
    ("192.0.2.50", None),            # no route at all
    ("192.0.2.50", "10.77.0.254"),  # only via a gateway: not directly connected
    ("fd99::50", None),
])
def test_no_connected_route_is_refused_on_this_node(vip_ip, gateway):
    with Lab() as lab:
        a, _, _ = three_nodes(lab, "ipv4")
        a.ip("addr", "add", "fd77::1/64", "dev", "eth0", "nodad")
        if gateway:
            a.ip("route", "add", "default", "via", gateway)
        before = addr_snapshot(a)
        routes_before = a.ipj("route", "show")
        r = vip(a, "start", ip=vip_ip, cloud="none")
        print(f"{vip_ip} via {gateway}: {r}")
        assert r.rc == 2, r
        assert any("directly connected" in x for x in r.reasons()), r.err
        assert addr_snapshot(a) == before
        assert a.ipj("route", "show") == routes_before


def test_deadline_truncates_announcements():
    ip = "10.77.0.100"
    with Lab() as lab:
        a, _, c = three_nodes(lab, "ipv4")
        cap = Capture(c, 2.0)
        r = vip(a, "start", ip=ip, cloud="none", arp_count=50, arp_interval=200,
                extra_env={"OCF_RESKEY_CRM_meta_timeout": "1000"})
        ann = [f for f in arp_frames(cap.frames(), ip) if f["garp"]]
        print(f"timeout 1000 ms, 50 x 200 ms asked: start rc={r.rc} after "
              f"{r.elapsed * 1000:.0f} ms, {len(ann)} GARPs sent; stderr: {r.err.strip()}")
        assert r.rc == 0, r
        assert r.elapsed < 0.95, r
        assert 1 <= len(ann) <= 5, len(ann)
        assert "WARNING" in r.err and "deadline" in r.err, r.err
        assert len(a.has(ip)) == 1
