"""lintian and rpmlint on the packages that `make packages` builds (packaging/build.sh).

Every tag must be fixed or explained: lintian's overrides ship in the .deb
(packaging/debian/cloudha.lintian-overrides -> /usr/share/lintian/overrides/cloudha), rpmlint's
filters are packaging/cloudha.rpmlintrc (with packaging/rpmlint.toml's settings). Each override
and filter carries its reason in the comment above it, and one that no longer matches a tag
fails too (lintian's unused-override, rpmlint's unused-rpmlintrc-filter).

Needs lintian and rpmlint (scripts/install-deps.sh). The packages: conftest.py.
"""

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINTIAN_OVERRIDES = REPO / "packaging/debian/cloudha.lintian-overrides"
RPMLINTRC = REPO / "packaging/cloudha.rpmlintrc"
RPMLINT_TOML = REPO / "packaging/rpmlint.toml"


def reasons_given(path, entry):
    """Every line matching `entry` has a comment line (its reason) right above it."""
    lines = path.read_text().splitlines()
    entries = [i for i, line in enumerate(lines) if re.match(entry, line)]
    assert entries, f"{path.name}: no entries"
    for i in entries:
        assert i > 0 and lines[i - 1].startswith("#") and len(lines[i - 1]) > 10, (
            f"{path.name}:{i + 1}: {lines[i]!r} has no reason above it"
        )


def need(tool):
    # Not a skip: scripts/install-deps.sh installs both, and an unlinted package must not pass.
    assert shutil.which(tool), f"{tool} is missing: run scripts/install-deps.sh"


def test_lintian_reports_nothing_unexplained(packages):
    need("lintian")
    deb = packages["deb"]
    reasons_given(LINTIAN_OVERRIDES, r"cloudha: ")
    # Every check level, experimental and pedantic ones too; overridden tags are not shown,
    # unused or mismatched overrides are (as tags of their own).
    p = subprocess.run(
        ["lintian", "-EvIL", "+pedantic", "--tag-display-limit", "0", "--fail-on", "none",
         str(deb)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    print(p.stdout, p.stderr)
    assert p.returncode == 0, p.stderr
    tags = [line for line in p.stdout.splitlines() if re.match(r"[EWIPXC]: ", line)]
    assert tags == [], "lintian tags without an override:\n" + "\n".join(tags)
    # The overrides are shipped where lintian looks for them in the installed package.
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout
    assert "./usr/share/lintian/overrides/cloudha\n" in listing


def test_rpmlint_reports_nothing_unexplained(packages):
    need("rpmlint")
    rpm = packages["rpm"]
    reasons_given(RPMLINTRC, r"addFilter\(")
    reasons_given(RPMLINT_TOML, r"\w+ = ")
    p = subprocess.run(
        ["rpmlint", "-c", str(RPMLINT_TOML), "-r", str(RPMLINTRC), str(rpm)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    print(p.stdout, p.stderr)
    tags = [line for line in p.stdout.splitlines() if re.search(r": [EW]: ", line)]
    assert tags == [], "rpmlint tags without a filter:\n" + "\n".join(tags)
    assert re.search(r"\b0 errors, 0 warnings\b", p.stdout), p.stdout
    assert p.returncode == 0, p.stdout + p.stderr
