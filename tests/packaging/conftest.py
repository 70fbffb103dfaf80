"""What the package tests share: the packages themselves, built once per session."""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("DIST", REPO / "dist"))


@pytest.fixture(scope="session")
def packages():
    """{"deb", "rpm": their paths, "version": packaging/changelog's}. packaging/build.sh
    builds them unless CLOUDHA_PACKAGES_BUILT=1 (`make test-packages` built them already); the
    file names must carry the changelog's version."""
    if os.environ.get("CLOUDHA_PACKAGES_BUILT") != "1":
        subprocess.run([str(REPO / "packaging/build.sh")], check=True, timeout=3600)
    top = (REPO / "packaging/changelog").read_text().splitlines()[0]
    m = re.match(r"cloudha \(([^)]+)\)", top)
    assert m, top
    version = m.group(1)  # e.g. 0.1.0-1
    upstream, release = version.rsplit("-", 1)
    deb = DIST / f"cloudha_{version}_amd64.deb"
    rpm = DIST / f"cloudha-{upstream}-{release}.x86_64.rpm"
    assert deb.is_file(), f"{deb} was not built"
    assert rpm.is_file(), f"{rpm} was not built"
    return {"deb": deb, "rpm": rpm, "version": version}
