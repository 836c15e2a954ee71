"""The kernel's side of the checks: ask the judge for cases, call the student's function on them.

The kernel only turns the student's results into plain data (numbers, lists, tensors as a shape and
a flat list of floats) and sends them back with the token of their batch of cases; the judge
(`cnncourse.grading.judge`) decides. What this module needs from the standard library, the
interpreter and the environment is taken when it is imported, which the notebooks' locked first
cell does (``from cnncourse import grading``) before any student code runs. Under ``cnncourse
grade`` the judge is the grader's, outside the kernel's jail, reached through the unix socket that
``CNNCOURSE_JUDGE_SOCKET`` names; otherwise (Validate, JupyterLab, Colab) the kernel starts its own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnncourse.grading.tasks import _decode

# Taken at import, before any student code runs: later patches of these do not reach the glue.
_Popen, _PIPE, _dumps, _loads = subprocess.Popen, subprocess.PIPE, json.dumps, json.loads
_ref = weakref.ref
# The judge: this interpreter, isolated (-I: no working directory, no PYTHON* variables, no user
# site), told where this kernel found cnncourse and torch (a user-site install must work too).
_JUDGE_CMD = [
    sys.executable,
    "-I",
    "-c",
    "import sys; sys.path[:0] = sys.argv[1:]; "
    "from cnncourse.grading.judge import main; main(['serve'])",
    str(Path(__file__).resolve().parents[2]),  # the folder that holds the cnncourse package
]
_TORCH = importlib.util.find_spec("torch")
_JUDGE_CMD += [os.path.dirname(os.path.dirname(_TORCH.origin))] if _TORCH and _TORCH.origin else []
_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "LD_AUDIT"))}
# When `cnncourse grade` runs this kernel (in its jail), the grader's judge listens on this socket
# and this kernel starts none of its own (see `cnncourse.grading.grader`).
_SOCKET = os.environ.get("CNNCOURSE_JUDGE_SOCKET")
_socket, _AF_UNIX = socket.socket, socket.AF_UNIX
_judge: list[Any] = []  # [process, stderr file] of this kernel's judge, once started


class _Connection:
    """The grader's judge, through its socket, seen as `_ask` sees a judge process."""

    def __init__(self, path: str) -> None:
        self.sock = _socket(_AF_UNIX)
        self.sock.connect(path)
        self.stdin = self.stdout = self.sock.makefile("rw", encoding="utf-8")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -1
        self.sock.close()

    def wait(self) -> int | None:
        return self.returncode


class CheckFailed(AssertionError):
    """A check found a wrong answer; the message says what is wrong, not what is right."""


def start_judge() -> None:
    """Start this kernel's judge now, if none runs (the checks also start it when they need it).

    The notebooks' locked first cell calls this, so the judge starts before any student code runs,
    and imports torch while the student works.
    """
    if (not _judge or _judge[0].poll() is not None) and _SOCKET:
        _judge[:] = [_Connection(_SOCKET), None]
    elif not _judge or _judge[0].poll() is not None:
        log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the judge's lifetime)
        # its own session: the interrupt that nbgrader (or a student) sends to the kernel's
        # process group at a cell's timeout must not stop the judge that the next cells need
        judge = _Popen(
            _JUDGE_CMD,
            stdin=_PIPE,
            stdout=_PIPE,
            stderr=log,
            env=_ENV,
            encoding="utf-8",
            start_new_session=True,
        )
        _judge[:] = [judge, log]


def _ask(request: dict) -> dict:
    start_judge()
    judge, log = _judge
    try:
        judge.stdin.write(_dumps(request) + "\n")
        judge.stdin.flush()
        line = judge.stdout.readline()
    except BaseException:  # e.g. a timeout's interrupt: start a fresh judge next time
        judge.kill()
        _judge.clear()
        raise
    if not line and log is None:
        judge.kill()
        _judge.clear()
        raise RuntimeError("the grader's judge closed the connection")
    if not line:
        judge.wait()
        log.seek(0)
        tail = log.read()[-2000:].decode(errors="replace")
        raise RuntimeError(f"the grading judge stopped (exit code {judge.returncode}):\n{tail}")
    reply = _loads(line)
    if "error" in reply:
        raise RuntimeError(f"the grading judge failed: {reply['error']}")
    return reply


def _plain(value: Any) -> Any:
    """A student's answer as plain JSON data; an object of another kind becomes its type's name."""
    import numbers

    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, tensors
        return _plain(value.tolist())
    return f"<a {type(value).__name__}>"


def _call(func: Callable[..., Any], case: dict, forbidden: frozenset[str], autograd: bool) -> dict:
    """Run the student's function on one case and return its result as plain data."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    graph_task = torch._C._current_graph_task_id  # -1 unless autograd runs a backward pass

    class Calls(TorchFunctionMode):  # notes a forbidden function called by its Python name
        used = ""  # e.g. F.adaptive_avg_pool2d(x, 1), which reaches aten only as a mean

        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            name = getattr(func, "__name__", "")
            if not self.used and (name in forbidden or name.lstrip("_") in forbidden):
                self.used = f"aten.{name.lstrip('_')}"
            return func(*args, **(kwargs or {}))

    class Guard(TorchDispatchMode):  # records (and refuses) the first forbidden operator
        used, seen = "", 0  # seen: operators that went through the guard
        made: dict = {}  # id -> weak reference of each tensor an operator made under the guard

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            self.seen += 1
            if (name := func.overloadpacket.__name__) in forbidden:
                self.used = self.used or f"aten.{name}"
                raise RuntimeError(f"aten.{name} is not allowed here")
            # autograd's engine runs a backward pass as a graph task (the mode follows it there)
            if not autograd and graph_task() != -1:
                self.used = self.used or "autograd"
                raise RuntimeError("autograd is not allowed here")
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, torch.Tensor):
                    self.made[id(t)] = _ref(t)
            return out

    kwargs, guard, calls = _decode(case, torch.float32), Guard(), Calls()
    try:
        # the guard only where asked (it slows every tensor operation); warnings off and prints to
        # stderr sent to stdout: nbgrader gives 0 points to a test cell that writes to stderr
        with warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
            warnings.simplefilter("ignore")
            with contextlib.ExitStack() as modes:
                if forbidden:
                    modes.enter_context(calls)
                if forbidden or not autograd:
                    modes.enter_context(guard)
                out = func(**kwargs)
        if guard.used or calls.used:
            return {"error": "forbidden", "forbidden": guard.used or calls.used}
        # whether the result was made by an operator the guard saw (not with the guard off):
        # the judge records it (0: no), for the instructor's review
        made = guard.made.get(id(out))
        seen = guard.seen if made is not None and made() is out else 0
        if not isinstance(out, torch.Tensor) or out.ndim == 0:
            return {"value": _plain(out), "type": type(out).__name__, "guard": seen}
        flat = out.detach().to("cpu", torch.float64).reshape(-1).tolist()
        return {"shape": list(out.shape), "values": [float(v) for v in flat], "guard": seen}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:400], "forbidden": guard.used}


def cases(task: str) -> list[dict[str, Any]]:
    """The keyword arguments of a task's visible cases (tensors included), to debug with."""
    import torch

    todo = _ask({"op": "show", "task": task})["cases"]
    return [_decode(case, torch.float32) for case in todo]


def check_function(task: str, func: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check the student's `func` on the judge's cases of `task` (one of `TASKS`).

    Raises `CheckFailed` with the judge's message, or NotImplementedError while `func` is still
    the released stub (it raises NotImplementedError, or an answer returns None, on every case).
    """
    if not callable(func):
        raise CheckFailed(f"{task}: expected a function, got a {type(func).__name__}")
    reply = _ask({"op": "cases", "task": task, "hidden": hidden})
    forbidden, autograd = frozenset(reply["forbidden"]), reply["autograd"]
    # Every case is guarded: a function that is honest on its first call only must not pass.
    results = [_call(func, case, forbidden, autograd) for case in reply["cases"]]
    verdict = _ask({"op": "judge", "token": reply["token"], "results": results})
    if verdict.get("unanswered"):  # the stub as released: the usual "not done yet" error
        raise NotImplementedError(verdict["message"])
    if not verdict["passed"]:
        raise CheckFailed(verdict["message"])
    print(verdict["message"])


def check_answer(question: str, func: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check a compute answer: the student's function of the question's givens (see `answers`).

    The visible check calls it on the question's own givens; a hidden check on fresh ones. The
    message says what is wrong (the call and what it returned), never the expected value.
    """
    check_function(question, func, hidden=hidden)
