#!/usr/bin/env python3
"""`make demo`: a real two-node Pacemaker cluster on a local EC2, with STONITH on as in
production, moves a cloudha VIP when a node hangs.

Brings up the EC2 lab (tests/lab/ec2lab: moto with fidelity fixes, IMDSv2 inside each node, a
VPC fabric that delivers an address only to the ENI EC2 says holds it, instances that take
STOP_DELAY s to stop as on EC2) with a two-node Corosync/Pacemaker cluster on it
(tests/lab/pcmk.py), stonith-enabled=true and one fence_cloudha device per node, creates vip1
(ocf:cloudha:vip, cloud=aws) on node1, then freezes node1 (SIGSTOP: its corosync stops
answering while its instance still runs, so only fencing can take it down). Node 2 fences it
through the EC2 API (StopInstances, confirmed stopped), then starts the VIP; Pacemaker's reboot
starts the instance again and the lab boots node1, which rejoins. Prints the timeline (lost,
fence requested, instance stopped, fence confirmed, start done, client answered), what a client
in another subnet polling the VIP every 50 ms saw and which ENI EC2 says holds the address, and
tears everything down. ``--l2`` runs a failover on a plain L2 network (cloud=none, no STONITH)
instead. Needs root; CLOUDHA_BIN names the binary (the Makefile sets it). Exit status 1 when
the VIP did not come back on node2 (or, with STONITH, node1 was not fenced first).
"""

import argparse
import sys
import time

import failover
import pcmk


def say(text: str = "") -> None:
    print(text, flush=True)


def indent(text: str) -> str:
    return "   " + text.replace("\n", "\n   ")


def report(t0: float, out, failures) -> int:
    say()
    ok = out.outage is not None and not failures
    if out.outage is not None:
        crash_to_node2 = out.first_from("node2", out.crash_at) - out.crash_at
        say(f"RESULT: the client lost the VIP for {out.outage:.2f}s (last answer from node1 -> "
            f"first answer from node2); node2 answered {crash_to_node2:.2f}s after node1 "
            f"{'froze' if out.fail == 'freeze' else 'crashed'}.")
    else:
        say("RESULT: FAILED - node2 never answered on the VIP")
    if failures:
        say(f"RESULT: FAILED - failed actions for vip1: {failures}")
    say(f"(whole demo: {time.monotonic() - t0:.1f}s)")
    return 0 if ok else 1


STOP_DELAY = 2.0  # seconds an instance is `stopping` (EC2 takes seconds to a minute)


def aws_demo(t0: float, service: tuple[float, float] = (0.0, 0.0)) -> int:
    from ec2lab import Ec2Lab

    vip = "10.0.1.100"
    say("== bringing up a local EC2 (VPC 10.0.0.0/16) and 2 Pacemaker nodes on it, a client in "
        "subnet 10.0.2.0/24; stonith-enabled=true")
    with Ec2Lab(nodes=2, name="demo", pacemaker=True, agents=("vip",), stonith=True) as lab:
        n1, n2 = lab.node(1), lab.node(2)
        if service != (0.0, 0.0):
            lab.set_service_time(*service)
            say(f"== every EC2 call takes {service[0] * 1000:.0f} ms (reads) or "
                f"{service[1] * 1000:.0f} ms (writes), as on a real API (an assumption)")
        say(f"   up in {lab.up_seconds:.1f}s: node1 {n1.ip} ({n1.instance_id}, {n1.eni_id}), "
            f"node2 {n2.ip} ({n2.instance_id}, {n2.eni_id}), client {lab.client_ip}")
        cloud = {"cloud": "aws", "endpoint_url": lab.endpoint}
        params = {"ip": vip, "cidr_netmask": "24", "nic": "eth0", **cloud}
        say("== pre-flight on node2 (cloudha vip check; fence_cloudha -o validate-all for "
            "node1):")
        check = n2.exec([str(lab.cluster.bin), "vip", "check", f"ip={vip}", "nic=eth0",
                         "cloud=aws", f"endpoint_url={lab.endpoint}"])
        say(indent((check.stdout + check.stderr).strip()))
        fence = n2.machine.run(["/usr/sbin/fence_cloudha", "-o", "validate-all", "-n", "node1",
                                "--cloud=aws", f"--endpoint-url={lab.endpoint}"], check=False)
        say(indent((fence.stdout + fence.stderr).strip()))
        say("== fence devices: pcs stonith create fence-nodeN fence_cloudha cloud=aws "
            "pcmk_host_list=nodeN (on the other node; the Name tag maps node to instance)")
        say(f"== creating vip1 = {failover.AGENT} ip={vip} cloud=aws, preferring node1; a "
            f"hostname server on :{failover.PORT} on each node; the client polls the VIP every "
            f"50 ms (200 ms timeout); instances take {STOP_DELAY:.0f}s to stop")
        out = failover.stonith_failover(lab, vip, params, {**cloud, "power_timeout": "60"},
                                        power_delay=STOP_DELAY, reboot=True,
                                        log=lambda s: say(indent(s)))
        say(f"== EC2 after the failover: {vip} is held by {lab.owners(vip)} "
            f"(node2's ENI is {n2.eni_id})")
        failures = failover.vip1_failures(lab.cluster.status(on="node2"))
        if lab.owners(vip) != [n2.eni_id]:
            failures.append({"ec2": f"{vip} held by {lab.owners(vip)}"})
        try:
            failover.check_fenced_first(lab, out)
        except AssertionError as e:
            failures.append({"fencing": str(e)})
        say("== timeline (seconds relative to the freeze)")
        say(out.timeline())
        say("== the fenced failover, step by step:")
        for label, t in out.milestones():
            say(f"   {label:<18} +{t:6.2f}s")
        say("== node1 boots again (Pacemaker's reboot started its instance) and rejoins:")
        try:
            failover.check_rejoined(lab, "node1", vip)
            say(indent(lab.cluster.crm_mon(on="node2", args=("-1rf",))))
        except (AssertionError, TimeoutError) as e:
            failures.append({"rejoin": str(e)})
        say("== teardown")
    return report(t0, out, failures)


def l2_demo(t0: float) -> int:
    say("== bringing up 2 Pacemaker nodes + a client in namespaces (10.77.0.0/24)")
    with pcmk.Lab(nodes=2, agents=("vip",), name="demo") as lab:
        say(f"   cluster up in {lab.up_seconds:.1f}s: node1 10.77.0.11, node2 10.77.0.12, "
            f"client 10.77.0.250")
        say(f"== creating vip1 = {failover.AGENT} ip={failover.VIP}/24 cloud=none, preferring "
            f"node1; a hostname server on :{failover.PORT} on each node; the client polls the "
            f"VIP every 50 ms (200 ms timeout)")
        out = failover.run(lab, log=lambda s: say(indent(s)))
        say("== after the crash, crm_mon -1rf on node2:")
        say(indent(lab.crm_mon(on="node2", args=("-1rf",))))
        failures = failover.vip1_failures(lab.status(on="node2"))
        say("== timeline (seconds relative to the crash)")
        say(out.timeline())
        say("== teardown")
    return report(t0, out, failures)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--l2", action="store_true", help="plain L2 network, cloud=none")
    ap.add_argument("--service", metavar="READ,WRITE", default="0,0",
                    help="milliseconds every EC2 read and write takes (e.g. 60,150)")
    args = ap.parse_args()
    read, write = (float(x) / 1000 for x in args.service.split(","))
    t0 = time.monotonic()
    return l2_demo(t0) if args.l2 else aws_demo(t0, (read, write))


if __name__ == "__main__":
    sys.exit(main())
