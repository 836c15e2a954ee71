"""The judge: a separate, isolated Python process that draws the cases, computes and compares.

The kernel starts it (`cnncourse.grading.kernel.start_judge`) with ``python -I`` and talks to it
over pipes, one JSON request per line and one JSON reply per line (`_serve`). Nothing the student's
kernel patches reaches this process: the cases, the reference results and the comparisons are all
made here, for the implementation tasks and the compute answers alike (`main`: ``serve``).

When grading (`cnncourse.grading.grader`), the grader starts the judge instead, outside the
student's jail, and the kernel reaches it through a unix socket (`serve_socket`: ``serve --socket
PATH``); the grader tells it which cell runs and reads its record of verdicts per ``grade_id``,
from which the test cells' points are set.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import zlib
from typing import Any

from cnncourse.grading.catalogue import TASKS
from cnncourse.grading.tasks import Task, first_wrong


def _canon(value: Any) -> Any:
    """Plain data in a canonical form: floats rounded to 4 decimals, 28.0 -> 28, tuples -> lists."""
    if isinstance(value, float) and math.isfinite(value):
        value = round(value, 4)
        return int(value) if value.is_integer() else value
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return value


def _problem(got: dict, want: Any, task: Task, hidden: bool) -> str | None:
    """What is wrong with one result, in words (None if it is right).

    The expected value is shown only for a visible case of a function task: a compute answer's
    visible case is the question itself, and a hidden case's result must stay hidden.
    """
    show = not (hidden or task.answer)
    if task.compare is not None and "error" not in got:
        return task.compare(got, want, show)
    if "error" in got:
        if got.get("forbidden") == "autograd":
            return (
                "it runs autograd (.backward(), torch.autograd.grad, torch.func): "
                "work the gradient out yourself"
            )
        if got.get("forbidden"):
            work = "the sliding window" if task.autograd else "the gradient"
            return (
                f"it uses torch's own `{got['forbidden']}` (F.conv2d, nn.Conv2d, unfold, "
                f"F.max_pool2d, their gradients, ...): write {work} yourself"
            )
        if got["error"].startswith("NotImplementedError"):
            return "it is not answered yet (it raises NotImplementedError)"
        return f"it raised {got['error']}"
    if not hasattr(want, "shape"):
        value = got.get("value", f"<a tensor of shape {got.get('shape')}>")
        if value is None and task.answer:
            return "it is not answered yet (it returns None)"
        if _canon(value) == _canon(want):
            return None
        return f"returned {value!r}, expected " + (repr(want) if show else "a different value")
    if "shape" not in got:
        return f"it returned a {got['type']}, not a torch.Tensor with dimensions"
    expected, shape = want.reshape(-1).tolist(), list(want.shape)
    if got["shape"] != shape or len(got["values"]) != len(expected):
        return f"its output has shape {tuple(got['shape'])}, expected {tuple(shape)}"
    if (found := first_wrong(got["values"], expected, shape, task.atol, task.rtol)) is None:
        return None
    count, index, a, b = found
    wrong = f"{count} of {len(expected)} values are wrong; at {index} got {a:.5g}"
    return wrong + f", expected {b:.5g}" * show


def _unanswered(got: dict, task: Task) -> bool:
    """Whether a result says "not answered": the stub's NotImplementedError (or None, an answer)."""
    if "error" in got:
        return got["error"].startswith("NotImplementedError")
    return task.answer and "value" in got and got["value"] is None


def _call_text(task: Task, case: dict) -> str:
    """``size_a(n=7, k=3)``: the call of one case, tensors shown by their shape."""
    args = ", ".join(
        f"{k}=<tensor {'x'.join(map(str, v['shape']))}>" if isinstance(v, dict) else f"{k}={v!r}"
        for k, v in case.items()
    )
    return f"{task.function}({args})"


def _verdict(name: str, hidden: bool, todo: list[dict], results: list[dict]) -> dict:
    kind, task = "hidden" if hidden else "visible", TASKS[name]
    if results and all(_unanswered(got, task) for got in results):
        how = "raises NotImplementedError" if "error" in results[0] else "returns None"
        return {
            "passed": False,
            "unanswered": True,
            "message": f"{task.function} is not answered yet: it still {how}",
        }
    failures = [
        (i, p)
        for i, (case, got) in enumerate(zip(todo, results, strict=True))
        if (p := _problem(got, task.reference(case), task, hidden))
    ]
    if not failures and task.answer:
        right = f"right on all {len(todo)} hidden cases" if hidden else "right"
        return {
            "passed": True,
            "message": f"{_call_text(task, todo[0]) if not hidden else name}: {right}",
        }
    if not failures:
        return {"passed": True, "message": f"{name}: all {len(todo)} {kind} cases are right"}
    i, problem = failures[0]
    if task.answer:  # what is wrong first, in one sentence; never the expected value
        call = _call_text(task, todo[i])
        lines = [f"{call} {problem}" if problem.startswith("returned") else f"{call}: {problem}"]
        if hidden:
            lines += [f"  {len(failures)} of {len(todo)} hidden cases (fresh givens) fail"]
        return {"passed": False, "message": "\n".join(lines)}
    args = ", ".join(
        f"{k}.shape={tuple(v['shape'])}" if isinstance(v, dict) else f"{k}={v!r}"
        for k, v in todo[i].items()
    )
    shown = "grading.modules.module_cases" if task.compare else "grading.cases"  # loadable
    where = "a random case" if hidden else f"cnncourse.{shown}({name!r})[{i}]"
    lines = [
        f"{task.function}: {len(failures)} of {len(todo)} {kind} cases fail.",
        f"  first: {where}",
    ]
    problem = f"it {problem}" if problem.startswith("returned") else problem
    lines += [f"  inputs: {args}", f"  problem: {problem}"]  # short lines: nbgrader cuts long ones
    return {"passed": False, "message": "\n".join(lines)}


MAX_PENDING = 256  # batches of cases sent and not judged yet, kept at most


class Judge:
    """The judge's state: the cases sent and not judged yet, and, when grading, the record.

    `handle` answers one request. When the grader runs the judge (`serve_socket`), it also says
    which cell runs now (`cell`); every verdict is then recorded under that cell's ``grade_id``
    (`record`), where the student's kernel cannot reach it.
    """

    def __init__(self) -> None:
        self.pending: dict[str, tuple] = {}  # token -> the cases sent, judged against them
        self.cell: str | None = None  # the grade_id of the cell that runs now (grading only)
        self.record: dict[str, list[dict]] = {}  # grade_id -> the verdicts made while it ran

    def handle(self, request: dict) -> dict:
        try:
            if request["op"] in ("cases", "show"):  # "show": visible cases, for `cases`
                name, hidden = request["task"], request["op"] == "cases" and request["hidden"]
                task = TASKS[name]  # KeyError: unknown task
                seed = int.from_bytes(os.urandom(8), "big") if hidden else zlib.crc32(name.encode())
                r = random.Random(seed)
                todo = [] if hidden else list(task.fixed)
                count = task.hidden if hidden else task.visible
                todo += [task.cases(r) for _ in range(count - len(todo))]
                token = os.urandom(8).hex()
                if request["op"] == "cases":
                    self.pending[token] = (name, hidden, todo)
                    while len(self.pending) > MAX_PENDING:  # a flood of requests: oldest first
                        self.pending.pop(next(iter(self.pending)))
                return {
                    "cases": todo,
                    "forbidden": sorted(task.forbidden),
                    "autograd": task.autograd,
                    "token": token,
                }
            if request["op"] != "judge":
                raise ValueError(f"unknown request {request['op']!r}")
            name, hidden, todo = self.pending.pop(request["token"])  # unknown or used: KeyError
            results = request["results"]
            verdict = _verdict(name, hidden, todo, results)
            if self.cell is not None:
                task = TASKS[name]
                ran = [isinstance(r, dict) and r.get("guard", 0) > 0 for r in results]
                entry = {"task": name, "hidden": hidden, **verdict}
                if task.guarded and not all(ran) and verdict["passed"]:
                    entry["review"] = (
                        f"{name}: a result was not made under the operator guard (turned off?)"
                    )
                self.record.setdefault(self.cell, []).append(entry)
            return verdict
        except Exception as error:  # the test cell in the kernel fails with this message
            return {"error": f"{type(error).__name__}: {error}"}


def _serve() -> None:
    """The judge's loop: one JSON request per line on stdin, one JSON reply per line on stdout."""
    out, sys.stdout = sys.stdout, sys.stderr  # a stray print must not corrupt the protocol
    import torch  # noqa: F401 (now, while the kernel is busy elsewhere, not at the first check)

    judge = Judge()
    for line in sys.stdin:
        out.write(json.dumps(judge.handle(json.loads(line))) + "\n")
        out.flush()


def serve_socket(path: str | None) -> None:
    """The grader's judge: the kernel's requests on a unix socket, control on stdin.

    The kernel (in its jail) connects to the socket (`path`, or the one the last ``socket``
    request named) and sends the requests of `_serve`. The grader, which started this process,
    writes control requests to its stdin, one JSON line each, and reads one reply line each from
    its stdout: ``{"op": "cell", "grade_id": ...}`` (the cell that runs now; ``null``: none),
    ``{"op": "record"}`` (the verdicts by grade_id), ``{"op": "socket", "path": ...}`` (the next
    submission: the socket and every connection to it are closed, the state (cases sent, record)
    starts empty, and the judge listens on `path`; ``null``: on none). The socket accepts no
    control request, so the student's code can neither choose the cell nor read or change the
    record. One judge serves a worker's submissions one after another: torch is imported once,
    and nothing of one submission (a connection, a case, a verdict) is left for the next.
    """
    import socket
    import threading

    out, sys.stdout = sys.stdout, sys.stderr
    import torch  # noqa: F401

    lock = threading.Lock()
    state: dict[str, Any] = {"judge": Judge(), "server": None, "conns": set()}

    def connection(conn: socket.socket, judge: Judge) -> None:
        with contextlib.suppress(OSError), conn, conn.makefile("r", encoding="utf-8") as lines:
            for line in lines:
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict) or request.get("op") not in KERNEL_OPS:
                        raise ValueError("unknown request")
                except ValueError as error:
                    reply = {"error": f"ValueError: {error}"}
                else:
                    with lock:  # a connection of an earlier submission judges in its own state
                        reply = judge.handle(request)
                conn.sendall((json.dumps(reply) + "\n").encode())

    def accept(server: socket.socket, judge: Judge) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the next submission has its own socket
                return
            with lock:
                if state["server"] is not server:
                    conn.close()
                    return
                state["conns"].add(conn)
            threading.Thread(target=connection, args=(conn, judge), daemon=True).start()

    def listen(where: str | None) -> None:
        """Close the socket and its connections; a fresh state; listen on `where` (held lock)."""
        if state["server"] is not None:
            with contextlib.suppress(OSError):
                state["server"].shutdown(socket.SHUT_RDWR)
            state["server"].close()
        for conn in state["conns"]:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        state.update(judge=Judge(), server=None, conns=set())
        if where is not None:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(where)
            server.listen(8)
            state["server"] = server
            threading.Thread(target=accept, args=(server, state["judge"]), daemon=True).start()

    with lock:
        listen(path)
    out.write(json.dumps({"ready": path}) + "\n")
    out.flush()
    for line in sys.stdin:  # the grader's control requests; its end ends the judge
        request = json.loads(line)
        with lock:
            judge = state["judge"]
            if request["op"] == "cell":
                judge.cell = request["grade_id"]
                reply = {"cell": judge.cell}
            elif request["op"] == "record":
                reply = {"record": judge.record}
            elif request["op"] == "socket":
                try:
                    listen(request["path"])
                    reply = {"ready": request["path"]}
                except OSError as error:
                    reply = {"error": f"{type(error).__name__}: {error}"}
            else:
                reply = {"error": f"unknown control request {request['op']!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


#: What a kernel may ask the judge (`Judge.handle`); the rest is the grader's, on stdin.
KERNEL_OPS = ("cases", "show", "judge")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["serve"]:
        _serve()
    elif len(args) == 3 and args[:2] == ["serve", "--socket"]:
        serve_socket(args[2] or None)
    else:
        raise SystemExit("usage: python -m cnncourse.grading serve [--socket PATH]")
