"""JupyterLab as students and instructors use it: a real server on loopback, set up from classroom/.

`lab_server` starts ``jupyter lab`` in a folder with one of the class set-ups of ``classroom/``
(`STUDENT` or `INSTRUCTOR`: a Jupyter config folder, see book/classroom.md) and yields its base
URL once it answers. `new_course` makes an instructor's course folder the way book/exercises.md
says (the repository's nbgrader_config.py, solutions/ and exercises/), and `lab_page` opens a
Chromium tab on it that refuses every request off the machine. The browser is the one the book's
test drives (`browser.find_chromium`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent
CLASSROOM = ROOT / "classroom"
STUDENT, INSTRUCTOR = CLASSROOM / "student", CLASSROOM / "instructor"
TOKEN = "cnncourse-lab-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def lab_server(root: Path, setup: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``jupyter lab`` serving `root`, configured by the class set-up `setup`; yields its URL.

    The server listens on loopback only, with a token; its log is ``root/../<setup>-server.log``.
    `env` adds environment variables (e.g. ``CNNCOURSE_EXCHANGE``, the class's exchange folder).
    """
    port, log = _free_port(), root.parent / f"{setup.name}-server.log"
    # the set-up's files, as an administrator installs them: the class's nbgrader_config.py with
    # them (JupyterLab writes its workspaces and settings there, not into the repository)
    config = shutil.copytree(setup, root.parent / f"{setup.name}-config")
    shutil.copy(CLASSROOM / "nbgrader_config.py", config)
    environ = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), **(env or {})}
    environ["JUPYTER_PATH"] = str(config / "share")  # the set-up's templates (the grading view's)
    environ["PATH"] = f"{BIN}{os.pathsep}{environ['PATH']}"  # nbgrader runs `alembic` from PATH
    cmd = [str(BIN / "jupyter-lab"), "--no-browser", f"--port={port}", "--ip=127.0.0.1"]
    cmd += [f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}"]
    cmd += ["--allow-root"] if os.geteuid() == 0 else []
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, cwd=root, env=environ, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-3000:]
                    raise RuntimeError(f"JupyterLab did not start:\n{tail}") from None
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def new_course(folder: Path) -> Path:
    """An instructor's course folder as book/exercises.md sets it up; returns it."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "solutions", folder / "solutions")
    shutil.copytree(ROOT / "exercises", folder / "exercises")
    return folder


@contextmanager
def lab_page(browser, base: str, path: str) -> Iterator[object]:  # noqa: ANN001
    """A desktop-sized tab on `base` + `path`, logged in; requests off the machine refused.

    The page's console errors collect in ``page.console_errors``.
    """
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        extra_http_headers={"Authorization": f"token {TOKEN}"},  # every request, XHRs included
    )
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    local = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(local)
            else route.abort("internetdisconnected")
        ),
    )
    page.goto(f"{base}{path}")
    try:
        yield page
    finally:
        context.close()
