#!/usr/bin/env python3
"""`make demo`: a real two-node Pacemaker cluster moves a cloudha VIP when a node dies.

Brings up the lab (tests/lab/pcmk.py), creates vip1 (ocf:cloudha:vip, cloud=none) on node1,
shows crm_mon, crashes node1 (SIGKILL of its PID 1), prints what a client polling the VIP every
50 ms saw, and tears everything down. Needs root; CLOUDHA_BIN names the binary (the Makefile
sets it). Exit status 1 when the VIP did not come back on node2.
"""

import sys
import time

import failover
import pcmk


def say(text: str = "") -> None:
    print(text, flush=True)


def main() -> int:
    t0 = time.monotonic()
    say("== bringing up 2 Pacemaker nodes + a client in namespaces (10.77.0.0/24)")
    with pcmk.Lab(nodes=2, agents=("vip",), name="demo") as lab:
        say(f"   cluster up in {lab.up_seconds:.1f}s: node1 10.77.0.11, node2 10.77.0.12, "
            f"client 10.77.0.250")
        say(f"== creating vip1 = {failover.AGENT} ip={failover.VIP}/24, preferring node1; a "
            f"hostname server on :{failover.PORT} on each node; the client polls the VIP every "
            f"50 ms (200 ms timeout)")
        out = failover.run(lab, log=lambda s: say("   " + s.replace("\n", "\n   ")))
        say("== after the crash, crm_mon -1rf on node2:")
        say("   " + lab.crm_mon(on="node2", args=("-1rf",)).replace("\n", "\n   "))
        failures = failover.vip1_failures(lab.status(on="node2"))
        say("== timeline (seconds relative to the crash)")
        say(out.timeline())
        say("== teardown")
    say()
    ok = out.outage is not None and not failures
    if out.outage is not None:
        crash_to_node2 = out.first_from("node2", out.crash_at) - out.crash_at
        say(f"RESULT: the client lost the VIP for {out.outage:.2f}s (last answer from node1 -> "
            f"first answer from node2); node2 answered {crash_to_node2:.2f}s after the crash.")
    else:
        say("RESULT: FAILED - node2 never answered on the VIP")
    if failures:
        say(f"RESULT: FAILED - failed actions for vip1: {failures}")
    say(f"(whole demo: {time.monotonic() - t0:.1f}s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
