"""The first cell of every notebook makes a bare runtime (Colab) able to run it: it installs
`cnncourse` from the course's git repository when the import fails.

The install itself is exercised the same way, with pip and a git URL, but from this checkout
(``git+file://``) instead of the network, into a folder that a fresh interpreter then imports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, notebooks

REPO_URL = re.search(r"^repository:\n  url: (\S+)$", (ROOT / "_config.yml").read_text(), re.M)[1]
INSTALL = re.compile(r'^    %pip install -q "cnncourse @ git\+(?P<url>\S+)"$', re.MULTILINE)


@pytest.mark.parametrize(
    "path",
    notebooks("book") + notebooks("solutions") + notebooks("exercises"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_first_cell_installs_the_package_when_it_is_missing(path: Path) -> None:
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert first.source.startswith("# Set-up"), "the set-up cell must come first"
    assert re.search(r"^try:\n    import cnncourse\nexcept ImportError:\n", first.source, re.M)
    install = INSTALL.search(first.source)
    assert install, "the first cell must %pip install cnncourse from git"
    assert install["url"] == REPO_URL, "install from the repository that _config.yml names"


@pytest.mark.slow
def test_pip_installs_the_package_from_a_git_url(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("this test needs the repository's git checkout (CI runs in a fresh clone)")
    target = tmp_path / "site"
    # --no-deps: a runtime like Colab has torch already; --no-build-isolation: no network here
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    cmd += ["--target", str(target), f"cnncourse @ git+file://{ROOT}"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    probe = (
        "import cnncourse, cnncourse.models, cnncourse.grading.judge; "
        "from cnncourse.profile import count_macs; "
        "print(cnncourse.__file__, count_macs(cnncourse.models.get_model('lenet5'), (1, 32, 32)))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    where, macs = out.stdout.split()
    assert Path(where).is_relative_to(target), f"imported {where}, not the installed copy"
    assert int(macs) > 0
