"""The jail of `cnncourse grade` (`cnncourse.grading.jail`): what a jailed program can see and do.

Each test runs a small Python program in a real bubblewrap jail, as a student's kernel runs: it
must not see the course folder (solutions, gradebook, other submissions), reach the network,
outlive the jail with a daemon, or pass the limits. The tests need ``bwrap`` (the CI installs
the bubblewrap package); without it they fail, as grading would refuse.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnncourse.grading import jail


def run(program: str, j: jail.Jail | None = None, **kwargs) -> tuple[int, str]:
    """Run `program` with this Python in a jail; return its exit status and its output."""
    j = j or jail.Jail()
    argv = [sys.executable, "-c", textwrap.dedent(program)]
    done = j.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course folder with what a student must not see, beside the jail's two folders."""
    (tmp_path / "solutions" / "ex01").mkdir(parents=True)
    (tmp_path / "solutions" / "ex01" / "ex01.ipynb").write_text("the solution")
    (tmp_path / "submitted" / "bob" / "ex01").mkdir(parents=True)
    (tmp_path / "submitted" / "bob" / "ex01" / "ex01.ipynb").write_text("bob's work")
    (tmp_path / "gradebook.db").write_text("grades")
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()")
    return tmp_path


def test_the_jail_hides_the_course_and_home(course: Path, tmp_path_factory) -> None:
    j = jail.Jail(work=tmp_path_factory.mktemp("work"), ipc=tmp_path_factory.mktemp("ipc"))
    (j.work / "alice.ipynb").write_text("alice's work")
    status, out = run(
        f"""
        import os
        from pathlib import Path
        course = Path({str(course)!r})
        for name in ("solutions/ex01/ex01.ipynb", "gradebook.db", "nbgrader_config.py",
                     "submitted/bob/ex01/ex01.ipynb"):
            print(name, (course / name).exists())
        print("cwd", sorted(os.listdir(".")), os.getcwd() == {str(j.work)!r})
        print("home", os.environ["HOME"], os.listdir(os.environ["HOME"]))
        print("root home", os.path.exists({str(Path.home())!r} + "/.bashrc"))
        import cnncourse.grading, torch  # the course's package and environment are there
        print("imports ok")
        """,
        j,
    )
    assert status == 0, out
    for name in ("solutions/ex01/ex01.ipynb", "gradebook.db", "nbgrader_config.py"):
        assert f"{name} False" in out
    assert "submitted/bob/ex01/ex01.ipynb False" in out
    assert "cwd ['alice.ipynb'] True" in out
    assert f"home {jail.HOME} []" in out and "root home False" in out
    assert "imports ok" in out
    assert (course / "gradebook.db").read_text() == "grades"


def test_the_package_and_environment_are_read_only() -> None:
    import cnncourse

    package = Path(cnncourse.__file__).parent
    status, out = run(
        f"""
        for path in ({str(package / "grading" / "kernel.py")!r}, {sys.executable!r}):
            try:
                open(path, "a").close()
                print("writable", path)
            except OSError as error:
                print("refused", type(error).__name__)
        """
    )
    assert status == 0 and "writable" not in out and out.count("refused") == 2, out


def test_the_jail_has_no_network() -> None:
    server = socket.create_server(("127.0.0.1", 0))  # listening here, outside the jail
    port = server.getsockname()[1]
    try:
        status, out = run(
            f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5)
                print("connected")
            except OSError as error:
                print("refused", type(error).__name__)
            try:
                socket.getaddrinfo("pypi.org", 443)
                print("resolved")
            except OSError:
                print("no name service")
            print(sorted(name for _, name in socket.if_nameindex()))
            """
        )
    finally:
        server.close()
    assert status == 0, out
    assert "connected" not in out and "refused" in out
    assert "resolved" not in out and "no name service" in out
    assert "['lo']" in out  # a network namespace of its own: only its loopback


def test_a_daemon_ends_with_the_jail(tmp_path_factory) -> None:
    j = jail.Jail(ipc=tmp_path_factory.mktemp("ipc"))
    beat = j.ipc / "beat"
    status, out = run(
        f"""
        import os, time
        if os.fork() == 0:          # a daemon: double fork, its own session
            os.setsid()
            if os.fork() == 0:
                while True:
                    with open({str(beat)!r}, "a") as f:
                        f.write(".")
                    time.sleep(0.05)
            os._exit(0)
        time.sleep(0.5)
        print("main ends")
        """,
        j,
    )
    assert status == 0 and "main ends" in out, out
    time.sleep(0.3)
    size = beat.stat().st_size
    assert size > 0  # the daemon ran...
    time.sleep(0.5)
    assert beat.stat().st_size == size  # ...and ended with the jail


def test_limits_hold_in_the_jail() -> None:
    limits = jail.Limits(memory=3 << 30, file_size=1 << 20, cpu_seconds=60)
    status, out = run(
        """
        import resource
        print("limits", [resource.getrlimit(k)[0] for k in
              (resource.RLIMIT_AS, resource.RLIMIT_FSIZE, resource.RLIMIT_CPU)])
        try:
            bytearray(4 << 30)
            print("allocated")
        except MemoryError:
            print("memory refused")
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            with open("big", "wb") as f:
                f.write(b"x" * (2 << 20))
            print("written")
        except OSError as error:
            print("file refused", error.errno)
        """,
        jail.Jail(limits),
    )
    assert status == 0, out
    assert f"limits {[3 << 30, 1 << 20, 60]}" in out
    assert "memory refused" in out and "allocated" not in out
    assert "file refused" in out and "written" not in out


def test_without_bwrap_the_jail_refuses_with_a_clear_message(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without bwrap
    with pytest.raises(jail.JailError, match="bubblewrap .* not installed.*--no-jail"):
        jail.probe()
    broken = tmp_path / "bwrap"  # a bwrap that cannot start anything
    fail = "echo 'bwrap: No permissions to create new namespace' >&2; exit 1"
    broken.write_text(f"#!/bin/sh\n{fail}\n")
    broken.chmod(0o755)
    with pytest.raises(jail.JailError, match="No permissions to create new namespace"):
        jail.probe()


def test_an_environment_under_tmp_or_home_stays_visible(monkeypatch, tmp_path) -> None:
    """A clone (and its .venv) under /tmp or /home, as CI makes one: the jail's empty /tmp and
    /home must not hide it. Every readable path is bound after those empty folders."""
    inside = [Path("/tmp/some-clone/.venv"), Path("/home/teacher/course/.venv")]
    monkeypatch.setattr(jail, "_readable_paths", lambda: inside)
    cmd = jail.Jail(work=tmp_path / "w", ipc=tmp_path / "i").command(["true"])
    last_tmpfs = max(i for i, a in enumerate(cmd) if a == "--tmpfs")
    for path in inside:
        assert cmd.index(str(path)) > last_tmpfs, cmd
