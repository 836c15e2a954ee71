"""One jail per submission: the student's kernel in a bubblewrap sandbox, with resource limits.

`Jail` wraps a command (the kernel's) in ``bwrap`` (https://github.com/containers/bubblewrap, the
``bubblewrap`` package of Debian, Ubuntu and Fedora): the process sees the system's programs and
libraries, this Python and its packages (the course's environment) and the ``cnncourse``
package, all read-only; a fresh empty HOME and /tmp; a working folder of its own (`Jail.work`),
and one folder shared with the grader (`Jail.ipc`: the kernel's sockets, its connection file
and the judge's socket). Nothing else of the file system: not the course folder, so neither
``solutions/``, nor other students' submissions, nor ``gradebook.db``, nor ``nbgrader_config.py``.
Every namespace is unshared (``--unshare-all``): no network (so the kernel talks over unix
sockets, jupyter_client's ``transport="ipc"``), its own process ids, so that when the kernel
ends, or the grader that started it dies (``--die-with-parent``), every process it started ends
too, daemons included. Before ``bwrap`` runs, `Limits` are set as resource limits, which the
jail's processes inherit: address space, file size, CPU time and the number of processes.

What it cannot do, plainly: the process limit is per user and Linux does not apply it to root
(run the grader as an ordinary user to have it); the address-space limit is per process; the
jail shares the machine's CPU and kernel, so a bug in Linux itself, or a side channel, is out of
its reach. `kernel_manager_class` is the jupyter_client kernel manager that starts a kernel in
a jail; `JailError` says why a jail cannot start (`probe`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Jail", "JailError", "Limits", "kernel_manager_class", "peak_memory", "probe"]

HOME = "/home/student"  # the jail's HOME: an empty tmpfs
# the system folders a Python program needs, read-only (a symlink such as /lib -> usr/lib is
# re-created as the same symlink inside)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# the variables a kernel keeps from the grader's environment (everything else is cleared)
KEEP_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class JailError(RuntimeError):
    """The jail cannot start here; the message says what failed."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of every process in a jail (each ``None``: no limit)."""

    memory: int | None = 8 << 30  # address space per process, bytes (torch maps about 2 GiB)
    processes: int | None = 256  # processes and threads of the user (not applied to root)
    file_size: int | None = 64 << 20  # the largest file a process may write, bytes
    cpu_seconds: int | None = 1800  # CPU time per process
    output_bytes: int = 256 << 10  # output kept per cell, in the grader (`grader.JudgedExecute`)

    def apply(self) -> None:
        """Set the limits on this process (run between fork and exec: `Jail.preexec`)."""
        for kind, value in (
            (resource.RLIMIT_AS, self.memory),
            (resource.RLIMIT_NPROC, self.processes),
            (resource.RLIMIT_FSIZE, self.file_size),
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_CORE, 0),
        ):
            if value is not None:
                resource.setrlimit(kind, (value, value))


def _readable_paths() -> list[Path]:
    """What a kernel of this Python needs to read: the interpreter, its packages, cnncourse."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    package = importlib.util.find_spec("cnncourse")
    if package and package.origin:
        paths.add(Path(package.origin).resolve().parent)
    for name in ("torch", "ipykernel", "numpy"):  # a user-site install of one of them
        spec = importlib.util.find_spec(name)
        if spec and spec.origin:
            paths.add(Path(spec.origin).resolve().parent.parent)
    paths = {p.resolve() for p in paths if p.exists()}
    # a folder inside another is bound with it; the system folders are bound anyway
    return sorted(
        p
        for p in paths
        if not any(q != p and q in p.parents for q in paths)
        and not any(p == Path(s) or Path(s) in p.parents for s in SYSTEM)
    )


@dataclass
class Jail:
    """A bubblewrap jail with a working folder and a folder shared with the grader.

    `work` and `ipc` are made fresh (``tempfile``) unless given; `close` removes them.
    """

    limits: Limits = field(default_factory=Limits)
    work: Path | None = None
    ipc: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra variables for the jailed program

    def __post_init__(self) -> None:
        self._made = []
        for name in ("work", "ipc"):
            if getattr(self, name) is None:
                made = Path(tempfile.mkdtemp(prefix=f"cnncourse-{name}-"))
                self._made.append(made)
                setattr(self, name, made)

    def close(self) -> None:
        for folder in self._made:
            shutil.rmtree(folder, ignore_errors=True)

    def command(self, argv: list[str]) -> list[str]:
        """``bwrap`` with this jail's mounts, namespaces and environment, running `argv`."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise JailError(
                "bubblewrap (the `bwrap` program) is not installed: install the `bubblewrap` "
                "package (apt-get install bubblewrap), or grade with --no-jail"
            )
        cmd = [bwrap, "--unshare-all", "--die-with-parent", "--clearenv"]
        for folder in SYSTEM:
            if os.path.islink(folder):
                cmd += ["--symlink", os.readlink(folder), folder]
            elif os.path.isdir(folder):
                cmd += ["--ro-bind", folder, folder]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/home"]
        cmd += ["--dir", HOME, "--tmpfs", "/run", "--tmpfs", "/var"]
        # after the empty /tmp and /home: an environment or a clone under them stays visible
        for path in _readable_paths():
            cmd += ["--ro-bind", str(path), str(path)]
        # the two folders of this submission, at the paths the grader knows them by
        cmd += ["--bind", str(self.work), str(self.work), "--bind", str(self.ipc), str(self.ipc)]
        env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
        path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
        env |= {"HOME": HOME, "PATH": path, "MPLBACKEND": "Agg", **self.env}
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        return [*cmd, "--chdir", str(self.work), "--", *argv]

    def preexec(self) -> None:
        """Between fork and exec of ``bwrap``: its limits, and the interrupt left to the kernel.

        ``bwrap`` itself must not die of the SIGINT that jupyter_client sends to the kernel's
        process group at a cell's timeout (``--die-with-parent`` would then kill the kernel): it
        ignores SIGINT, and ipykernel installs its own handler while it runs a cell.
        """
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.limits.apply()

    def run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        """Run `argv` in this jail to its end (``subprocess.run``'s keyword arguments)."""
        return subprocess.run(
            self.command(argv), preexec_fn=self.preexec, start_new_session=True, **kwargs
        )


def probe(limits: Limits | None = None) -> None:
    """Start a Python in a jail and check that it runs; raise `JailError` saying what failed."""
    jail = Jail(limits or Limits())
    try:
        argv = [sys.executable, "-c", "import cnncourse.grading; print('jailed')"]
        try:
            done = jail.run(argv, capture_output=True, text=True, timeout=120)
        except OSError as error:
            raise JailError(f"bubblewrap (bwrap) could not be started: {error}") from None
        if done.returncode != 0 or done.stdout.strip() != "jailed":
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise JailError(f"bubblewrap (bwrap) failed to start a jailed Python: {tail}")
    finally:
        jail.close()


def peak_memory(pid: int) -> int:
    """The largest resident memory (bytes, VmHWM) of `pid` and its descendants now alive."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    peak, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            continue
    return peak


@functools.cache
def kernel_manager_class() -> type:
    """`JailedKernelManager`, built on first use (jupyter_client is a grader-only dependency)."""
    from jupyter_client.manager import AsyncKernelManager

    class JailedKernelManager(AsyncKernelManager):
        """An AsyncKernelManager whose kernel runs in `jail`, over unix sockets in `jail.ipc`."""

        def __init__(self, jail: Jail, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(jail.ipc / "kernel"))
            kwargs.setdefault("connection_file", str(jail.ipc / "kernel.json"))
            super().__init__(**kwargs)
            self.jail = jail
            self.peak = 0

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.pop("env", None)  # the jail sets the kernel's whole environment
            kw["cwd"], kw["preexec_fn"] = str(self.jail.work), self.jail.preexec
            await super()._async_launch_kernel(self.jail.command(kernel_cmd), **kw)

        def record_peak(self) -> int:
            """Note the kernel's peak memory so far (call before it ends); return it."""
            pid = getattr(self.provisioner, "pid", None)
            if pid:
                self.peak = max(self.peak, peak_memory(pid))
            return self.peak

    return JailedKernelManager
