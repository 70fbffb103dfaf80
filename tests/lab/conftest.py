"""Fixtures every lab module shares. A module declares its lab and the fixtures build it:

- ``LAB = (Ec2Lab or OciLab, keyword arguments)``: one lab for the whole module; with
  ``SERVE = port`` each node serves its name there; ``ready(lab)``, if defined, finishes it.
- ``CLUSTER = (Ec2Lab or OciLab, name, agents[, lab keyword arguments])``: a cloud lab with a
  Pacemaker cluster on it (failover.cloud_cluster), one per module (its tests share it, in order).
- ``before_each(lab)`` / ``after_each(lab)``: run around every test that uses the lab, so faults
  and denials never leak from one test into the next.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The lab's own modules (netns, cloudvip, ec2lab, ...) import by their plain names.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def lab(request):
    m = request.module
    if hasattr(m, "CLUSTER"):
        import failover

        kind, name, agents, *kw = m.CLUSTER
        with failover.cloud_cluster(request, kind, name, agents=agents, **(kw[0] if kw else {})) as lab:
            yield lab
        return
    kind, kw = m.LAB
    with kind(**kw) as lab:
        print(f"\n{kind.__name__} up in {lab.up_seconds:.2f}s")
        for n in lab.nodes if hasattr(m, "SERVE") else ():
            n.serve_name(m.SERVE)
        if hasattr(m, "ready"):
            m.ready(lab)
        yield lab
    print(f"{kind.__name__} down in {lab.down_seconds:.2f}s")


@pytest.fixture(autouse=True)
def lab_controls(request):
    m = request.module
    hooks = hasattr(m, "before_each") or hasattr(m, "after_each")
    lab = request.getfixturevalue("lab") if hooks and "lab" in request.fixturenames else None
    if lab is not None and hasattr(m, "before_each"):
        m.before_each(lab)
    yield
    if lab is not None and hasattr(m, "after_each"):
        m.after_each(lab)
