"""No-panic sweep of the built binary (issue 11). See sweep.py for what is run and checked.

Environment: CLOUDHA_BIN (the binary), CLOUDHA_SWEEP_REPORT (write the JSON summary there),
CLOUDHA_SWEEP_WORKERS (parallel namespaces, default 3), CLOUDHA_SWEEP_VALUES (use only the first
N hostile values: a quicker, smaller sweep).
"""

from __future__ import annotations

import json
import os

import pytest

import sweep


def test_hostile_environments_never_crash_lie_or_leak():
    values = sweep.HOSTILE
    n = os.environ.get("CLOUDHA_SWEEP_VALUES")
    if n:
        values = values[: int(n)]
    s = sweep.run_sweep(workers=int(os.environ.get("CLOUDHA_SWEEP_WORKERS", "3")), values=values)
    fails = s.pop("_all")
    print(f"sweep: {s['invocations']} invocations in {s['seconds']} s, {s['crashes']} crashes, "
          f"{s['wrong_codes']} wrong codes, {s['multi_reason']} multi-line reasons, "
          f"{s['leaks']} leaks, {s['forged']} forged lines, {s['long_lines']} long lines, "
          f"{s['late']} late; worst {s['worst_elapsed_s']} s vs deadline "
          f"{s['worst_deadline_s']} s; slowest {s['max_elapsed_s']} s (deadline "
          f"{s['max_elapsed_deadline_s']} s): {s['max_elapsed_case']}")
    report = os.environ.get("CLOUDHA_SWEEP_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(s, f, indent=2)
    # The sweep must really have run something in every cell.
    assert s["invocations"] > 0
    if fails:
        pytest.fail(f"{len(fails)} failures in {len(s['classes'])} classes, first ones (one per "
                    "class first):\n" + "\n".join(s["first_failures"]), pytrace=False)


def test_the_checks_can_fail():
    """Each check of the sweep catches what it is for (fed made-up answers, no binary run)."""
    v = sweep.Variant("vip/none", "vip", {"ip": b"10.99.0.100"})
    sweep._declared["vip"] = {"start": 20.0, "stop": 20.0, "monitor": 20.0}
    case = sweep.Case("ocf", v, "stop", "stop", {b"OCF_RESKEY_CRM_meta_timeout": b"3000"}, {})
    assert case.deadline() == 3.0
    ok = sweep.check(case, 0, b"", b"", 0.1, 3.0)
    assert ok == []

    def what(rc, out=b"", err=b"", elapsed=0.1, c=case):
        return [f.what for f in sweep.check(c, rc, out, err, elapsed, c.deadline())]

    assert "crash" in what(101, err=b"thread 'main' panicked at src/x.rs:1:1")
    assert "crash" in what(-9)
    assert "wrong code" in what(7)
    assert "2 reason lines" in what(1, err=b"ocf-exit-reason:a\nocf-exit-reason:b\n")
    assert any(w.startswith("line of") for w in what(1, err=b"ocf-exit-reason:" + b"x" * 2000))
    assert "forged line" in what(1, err=b"ocf-exit-reason:x\nocf-exit-reason:forged\n")
    assert "forged line" in what(1, err=b"ocf-exit-reason:x\rforged\n")
    assert any(w.startswith("took") for w in what(0, elapsed=5.5))
    assert any(w.startswith("killed") for w in what(None))
    # A non-finite caller timeout means the declared one.
    inf = sweep.Case("ocf", v, "stop", "stop", {b"OCF_RESKEY_CRM_meta_timeout": b"inf"}, {})
    assert inf.deadline() == 20.0
    crs = sweep.Case("crs", v, "check", "check", {b"_CRS_CHECK_TIMEOUT": b"NaN",
                                                   b"_CRS_SCRIPT_TIMEOUT": b"7"}, {})
    assert crs.deadline() == 7.0
    assert "wrong code" in what(6, c=crs)
    assert what(4, out=b"CRS_WARNING: x\n", c=crs) == []
    sweep._declared.clear()
