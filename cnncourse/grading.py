"""Checks for the exercises' tests: helpful messages, hidden answers, and a trusted judge.

A test cell calls ``check_function("conv2d.basic", conv2d)`` or ``check_answers("ex01.sizes",
{"size_a": size_a}, {"size_a": "<digest>"})``. The work is split between two processes:

- the **judge**, a separate Python process (one per kernel, see `start_judge`), draws the cases,
  computes the reference (torch, or the formulas of `cnncourse.counting`) and compares. Visible
  checks use a fixed seed per task (`cases` shows them); hidden checks draw a fresh seed from
  ``os.urandom``, so a lookup table of the visible cases does not pass them;
- the **kernel** (the student's notebook) only calls the student's function on the cases it is sent
  and returns plain data: numbers, lists, and tensors as a shape and a flat list of floats. The
  results go back with the token of their batch of cases, and are judged against those cases.

So what a student's cell patches in its own process (``torch.testing``, ``torch.randn``,
``torch.allclose``, ``Tensor.__eq__``, ``cnncourse.counting``, ``hashlib``, ``json``) cannot change
the reference or the comparison. The notebooks' locked first cell imports this module and starts
the judge before any student code runs: the functions the glue uses, the interpreter and the
environment are taken then, and the judge runs isolated (``python -I``: no working directory, no
``PYTHON*`` variables). Compute answers are compared as salted sha256 digests, in the judge. While
the first case of an implementation task runs, a torch dispatch mode refuses torch's own operator
(``aten.convolution``, ``max_pool2d``, ``im2col``, ``unfold``), so ``F.conv2d`` in a "from scratch"
function fails with a clear message.

Residual risk, plainly: nbgrader runs the student's code and the tests in one kernel and reads the
verdict from that kernel's outputs. A student who deliberately sabotages this module in the kernel
(``grading.check_function = lambda *a, **k: None``), IPython's machinery, or installed files can
still forge a pass; code run by the autograder has the instructor's permissions (it could edit
``gradebook.db``). The dispatch guard is an honesty check: a reference saved elsewhere, numpy, or a
call to `cnncourse.counting` in a formula task passes it. Digests of small integers can be
brute-forced. For high stakes, autograde in a sandbox (one container per submission) and read the
code of suspicious submissions.

Instructors: ``python -m cnncourse.grading digest QUESTION NAME JSON_VALUE`` prints a digest;
`feedback_preprocessor` keeps hidden tests out of nbgrader's feedback (``nbgrader_config.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "CheckFailed",
    "TASKS",
    "cases",
    "check_answers",
    "check_function",
    "digest",
    "start_judge",
]

# Taken at import, before any student code runs: later patches of these do not reach the glue.
_Popen, _PIPE, _dumps, _loads = subprocess.Popen, subprocess.PIPE, json.dumps, json.loads
# The judge: this interpreter, isolated (-I: no working directory, no PYTHON* variables, no user
# site), told where this kernel found cnncourse and torch (a user-site install must work too).
_JUDGE_CMD = [
    sys.executable,
    "-I",
    "-c",
    "import sys; sys.path[:0] = sys.argv[1:]; from cnncourse.grading import main; main(['serve'])",
    str(Path(__file__).resolve().parents[1]),
]
_TORCH = importlib.util.find_spec("torch")
_JUDGE_CMD += [os.path.dirname(os.path.dirname(_TORCH.origin))] if _TORCH and _TORCH.origin else []
_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "LD_AUDIT"))}
_judge: list[Any] = []  # [process, stderr file] of this kernel's judge, once started

CONV_OPS = frozenset({"convolution", "_convolution", "conv_tbc", "im2col", "unfold"})
POOL_OPS = CONV_OPS | {"max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_max_pool2d"}
# task -> (the student's function, aten operators it must not use); cases: `_make_case`
TASKS: dict[str, tuple[str, frozenset[str]]] = {
    "output_size": ("output_size", frozenset()),
    "conv2d.basic": ("conv2d", CONV_OPS),
    "conv2d.channels": ("conv2d", CONV_OPS),
    "conv2d.stride_padding": ("conv2d", CONV_OPS),
    "count_conv_params": ("count_conv_params", frozenset()),
    "count_conv_macs": ("count_conv_macs", frozenset()),
    "max_pool2d": ("max_pool2d", POOL_OPS),
    "avg_pool2d": ("avg_pool2d", POOL_OPS),
    "global_avg_pool2d": ("global_avg_pool2d", POOL_OPS),
    "receptive_field": ("receptive_field", frozenset()),
}
# The slides' 7x7 input (row by row) and 3x3 filter: the first visible case of conv2d.basic.
SLIDES_X = [float(c) for c in "2222333101111011330001132003113200313320033332003"]
SLIDES_W = [-1.0, 0.5, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
SLIDES = {"x": {"shape": [1, 1, 7, 7], "values": SLIDES_X},
          "weight": {"shape": [1, 1, 3, 3], "values": SLIDES_W}}  # fmt: skip


class CheckFailed(AssertionError):
    """A check found a wrong answer; the message says what is wrong, not what is right."""


# --- the judge's side --------------------------------------------------------------------------


def _t(r: random.Random, *shape: int) -> dict:
    """A random tensor, as shape and flat values: multiples of 1/4 in [-2, 2], exact in float32."""
    return {"shape": list(shape), "values": [r.randint(-8, 8) / 4 for _ in range(math.prod(shape))]}


def _decode(case: dict, dtype: Any) -> dict[str, Any]:
    """A case's keyword arguments, with its tensors made into torch tensors of `dtype`."""
    import torch

    def tensor(v: dict) -> Any:
        return torch.tensor(v["values"], dtype=dtype).reshape(v["shape"])

    return {k: tensor(v) if isinstance(v, dict) else v for k, v in case.items()}


def _make_case(task: str, r: random.Random) -> dict:
    """One random case of `task`: the keyword arguments of the student's function."""
    if task.startswith("conv2d."):
        plain, strided = task == "conv2d.basic", task == "conv2d.stride_padding"
        n, cin, cout = (1, 1, 1) if plain else (r.randint(1, 2), r.randint(1, 3), r.randint(1, 3))
        kh = r.randint(1, 4)
        kw = kh if plain or r.random() < 0.6 else r.randint(1, 4)
        s, p = (r.randint(1, 3), r.randint(0, 2)) if strided else (1, 0)
        h, w = r.randint(max(kh - 2 * p, 1), 8), r.randint(max(kw - 2 * p, 1), 8)
        case = {"x": _t(r, n, cin, h, w), "weight": _t(r, cout, cin, kh, kw)}
        if not plain:
            case["bias"] = _t(r, cout) if r.random() < 0.7 else None
        return {**case, "stride": s, "padding": p} if strided else case
    if task.endswith("pool2d"):
        n, c, k = r.randint(1, 2), r.randint(1, 3), r.randint(1, 3)
        if task == "global_avg_pool2d":
            return {"x": _t(r, n, c, r.randint(1, 7), r.randint(1, 7))}
        s = r.choice([None, None, 1, 2, 3])
        return {"x": _t(r, n, c, r.randint(k, 9), r.randint(k, 9)), "kernel_size": k, "stride": s}
    if task == "output_size":
        while True:
            n, k, s, p, d = (
                r.randint(lo, hi) for lo, hi in ((1, 64), (1, 11), (1, 4), (0, 3), (1, 3))
            )
            if d * (k - 1) + 1 <= n + 2 * p:
                return {"size": n, "kernel_size": k, "stride": s, "padding": p, "dilation": d}
    if task == "receptive_field":
        return {"layers": [[r.randint(1, 7), r.randint(1, 2)] for _ in range(r.randint(1, 6))]}
    size = first = r.randint(8, 64)  # count_conv_params / count_conv_macs: a random conv stack
    layers = []
    for _ in range(r.randint(1, 5)):
        k, d, s = r.choice([1, 3, 5, 7]), r.randint(1, 128), r.randint(1, 2)
        p = r.randint(0, k // 2)
        if task == "count_conv_params":
            layers.append([k, d])
        elif k <= size + 2 * p:
            layers.append([k, d, s, p])
            size = (size + 2 * p - k) // s + 1
    case = {"in_channels": r.randint(1, 64), "layers": layers or [[1, 8, 1, 0]]}
    return {**case, "size": first} if task == "count_conv_macs" else case


def _reference(task: str, case: dict) -> Any:
    """The right result for one case: torch's operators, or the formulas of `cnncourse.counting`."""
    from cnncourse import counting as c

    if task == "output_size":
        return c.conv_output_size(**case)
    if task == "receptive_field":
        return c.receptive_field([tuple(layer) for layer in case["layers"]])
    if task.startswith("count_conv"):
        p, size, out = case["in_channels"], case.get("size"), []
        for k, d, *stride_padding in case["layers"]:
            if task == "count_conv_params":
                out.append(c.conv_params(p, d, k))
            else:
                size = c.conv_output_size(size, k, *stride_padding)
                out.append(c.conv_macs(p, d, k, size))
            p = d
        return out
    import torch
    import torch.nn.functional as F

    a = _decode(case, torch.float64)
    if task.startswith("conv2d"):
        return F.conv2d(a["x"], a["weight"], a.get("bias"), a.get("stride", 1), a.get("padding", 0))
    if task == "global_avg_pool2d":
        return F.adaptive_avg_pool2d(a["x"], 1).flatten(1)
    pool = F.max_pool2d if task == "max_pool2d" else F.avg_pool2d
    return pool(a["x"], a["kernel_size"], a["stride"])


def _canon(value: Any) -> Any:
    """Plain data in a canonical form: floats rounded to 4 decimals, 28.0 -> 28, tuples -> lists."""
    if isinstance(value, float) and math.isfinite(value):
        value = round(value, 4)
        return int(value) if value.is_integer() else value
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return value


def digest(question: str, name: str, value: Any) -> str:
    """Salted digest of an answer: the check compares digests, so the notebook never shows it."""
    text = f"cnncourse:{question}:{name}:{json.dumps(_canon(value))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _problem(got: dict, want: Any) -> str | None:
    """What is wrong with one result, in words (None if it is right)."""
    if "error" in got:
        if got.get("forbidden"):
            return (
                f"it uses torch's own `{got['forbidden']}` (F.conv2d, nn.Conv2d, unfold, "
                "F.max_pool2d, ...): write the sliding window yourself"
            )
        if got["error"].startswith("NotImplementedError"):
            return "it is not implemented yet (it raises NotImplementedError)"
        return f"it raised {got['error']}"
    if not hasattr(want, "shape"):
        value = got.get("value", f"<a tensor of shape {got.get('shape')}>")
        return (
            None if _canon(value) == _canon(want) else f"it returned {value!r}, expected {want!r}"
        )
    if "shape" not in got:
        return f"it returned a {got['type']}, not a torch.Tensor with dimensions"
    expected, shape = want.reshape(-1).tolist(), list(want.shape)
    if got["shape"] != shape or len(got["values"]) != len(expected):
        return f"its output has shape {tuple(got['shape'])}, expected {tuple(shape)}"
    bad = [
        i
        for i, (a, b) in enumerate(zip(got["values"], expected, strict=True))
        if not abs(a - b) <= 1e-4 + 1e-4 * abs(b)
    ]
    if not bad:
        return None
    index, rest = [], bad[0]
    for dim in reversed(shape):
        index, rest = [rest % dim, *index], rest // dim
    a, b = got["values"][bad[0]], expected[bad[0]]
    return (
        f"{len(bad)} of {len(expected)} values are wrong; at {index} got {a:.5g}, expected {b:.5g}"
    )


def _verdict(task: str, hidden: bool, todo: list[dict], results: list[dict]) -> dict:
    kind = "hidden" if hidden else "visible"
    failures = [
        (i, p)
        for i, (case, got) in enumerate(zip(todo, results, strict=True))
        if (p := _problem(got, _reference(task, case)))
    ]
    if not failures:
        return {"passed": True, "message": f"{task}: all {len(todo)} {kind} cases are right"}
    i, problem = failures[0]
    args = ", ".join(
        f"{k}.shape={tuple(v['shape'])}" if isinstance(v, dict) else f"{k}={v!r}"
        for k, v in todo[i].items()
    )
    where = "a random case" if hidden else f"cnncourse.grading.cases({task!r})[{i}]"
    lines = [
        f"{TASKS[task][0]}: {len(failures)} of {len(todo)} {kind} cases fail.",
        f"  first: {where}",
    ]
    lines += [f"  inputs: {args}", f"  problem: {problem}"]  # short lines: nbgrader cuts long ones
    return {"passed": False, "message": "\n".join(lines)}


def _answers_verdict(question: str, answers: dict, expected: dict, hints: dict) -> dict:
    wrong = [
        k
        for k in expected
        if answers.get(k) is None or digest(question, k, answers[k]) != expected[k]
    ]
    if not wrong:
        return {"passed": True, "message": f"{question}: all {len(expected)} answers are right"}
    right = [k for k in expected if k not in wrong]
    lines = [f"{question}: {len(wrong)} of {len(expected)} answers are not right yet."]
    lines += [f"  not right yet: {', '.join(wrong)}"] + (
        [f"  right: {', '.join(right)}"] * bool(right)
    )
    lines += [f"  hint for {k}: {hints[k]}" for k in wrong if k in hints]
    return {"passed": False, "message": "\n".join(lines)}


def _serve() -> None:
    """The judge's loop: one JSON request per line on stdin, one JSON reply per line on stdout."""
    out, sys.stdout = sys.stdout, sys.stderr  # a stray print must not corrupt the protocol
    import torch  # noqa: F401 (now, while the kernel is busy elsewhere, not at the first check)

    pending: dict[str, tuple] = {}  # token -> the cases sent, so results are judged against them
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] in ("cases", "show"):  # "show": visible cases, for `cases`
                task, hidden = request["task"], request["op"] == "cases" and request["hidden"]
                forbidden = TASKS[task][1]  # KeyError: unknown task
                seed = int.from_bytes(os.urandom(8), "big") if hidden else zlib.crc32(task.encode())
                r = random.Random(seed)
                todo = [SLIDES] if task == "conv2d.basic" and not hidden else []
                count = (12 if hidden else 4) if forbidden else (40 if hidden else 6)
                todo += [_make_case(task, r) for _ in range(count - len(todo))]
                token = os.urandom(8).hex()
                if request["op"] == "cases":
                    pending[token] = (task, hidden, todo)
                reply = {"cases": todo, "forbidden": sorted(forbidden), "token": token}
            elif request["op"] == "judge":
                reply = _verdict(*pending.pop(request["token"]), request["results"])
            else:
                keys = ("question", "answers", "expected", "hints")
                reply = _answers_verdict(*(request[k] for k in keys))
        except Exception as error:  # the test cell in the kernel fails with this message
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


# --- the kernel's side: ask the judge, call the student's function ------------------------------


def start_judge() -> None:
    """Start this kernel's judge now, if none runs (the checks also start it when they need it).

    The notebooks' locked first cell calls this, so the judge starts before any student code runs,
    and imports torch while the student works.
    """
    if not _judge or _judge[0].poll() is not None:
        log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the judge's lifetime)
        judge = _Popen(
            _JUDGE_CMD, stdin=_PIPE, stdout=_PIPE, stderr=log, env=_ENV, encoding="utf-8"
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


def _call(func: Callable[..., Any], case: dict, forbidden: frozenset[str]) -> dict:
    """Run the student's function on one case and return its result as plain data."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Guard(TorchDispatchMode):  # records (and refuses) the first forbidden aten operator
        used = ""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            if (name := func.overloadpacket.__name__) in forbidden:
                self.used = self.used or f"aten.{name}"
                raise RuntimeError(f"aten.{name} is not allowed here")
            return func(*args, **(kwargs or {}))

    kwargs, guard = _decode(case, torch.float32), Guard()
    try:
        # the guard only where asked (it slows every tensor operation); warnings off and prints to
        # stderr sent to stdout: nbgrader gives 0 points to a test cell that writes to stderr
        with warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
            warnings.simplefilter("ignore")
            with guard if forbidden else contextlib.nullcontext():
                out = func(**kwargs)
        if guard.used:
            return {"error": "forbidden", "forbidden": guard.used}
        if not isinstance(out, torch.Tensor) or out.ndim == 0:
            return {"value": _plain(out), "type": type(out).__name__}
        flat = out.detach().to("cpu", torch.float64).reshape(-1).tolist()
        return {"shape": list(out.shape), "values": [float(v) for v in flat]}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:400], "forbidden": guard.used}


def cases(task: str) -> list[dict[str, Any]]:
    """The keyword arguments of a task's visible cases (tensors included), to debug with."""
    import torch

    todo = _ask({"op": "show", "task": task})["cases"]
    return [_decode(case, torch.float32) for case in todo]


def check_function(task: str, func: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check the student's `func` on the judge's cases of `task` (one of `TASKS`)."""
    if not callable(func):
        raise CheckFailed(f"{task}: expected a function, got a {type(func).__name__}")
    reply = _ask({"op": "cases", "task": task, "hidden": hidden})
    forbidden = frozenset(reply["forbidden"])
    results = [
        _call(func, case, forbidden if i == 0 else frozenset())
        for i, case in enumerate(reply["cases"])
    ]
    verdict = _ask({"op": "judge", "token": reply["token"], "results": results})
    if not verdict["passed"]:
        raise CheckFailed(verdict["message"])
    print(verdict["message"])


def check_answers(
    question: str, answers: dict[str, Any], expected: dict[str, str], hints: dict | None = None
) -> None:
    """Compare named answers with their digests; the message names wrong answers, never values."""
    plain = {k: _plain(v) for k, v in answers.items()}
    request = {"question": question, "answers": plain, "expected": expected, "hints": hints or {}}
    verdict = _ask({"op": "answers", **request})
    if not verdict["passed"]:
        raise CheckFailed(verdict["message"])
    print(verdict["message"])


def feedback_preprocessor() -> type:
    """nbgrader preprocessor for ``generate_feedback``: see ``nbgrader_config.py``.

    A traceback quotes the lines around the failure, hidden tests included, so a cell with hidden
    tests keeps only the last line of its traceback (the message); nbgrader's `ClearHiddenTests`,
    run after it, removes the hidden lines from the cell's source. Built on demand because nbgrader
    is slow to import and absent from students' runtimes.
    """
    from nbgrader.preprocessors import NbGraderPreprocessor

    class HideHiddenTracebacks(NbGraderPreprocessor):
        def preprocess_cell(self, cell: Any, resources: dict, index: int) -> tuple[Any, dict]:
            if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
                for output in cell.outputs:
                    if output.output_type == "error":
                        output.traceback = [f"{output.ename}: {output.evalue}"]
            return cell, resources

    return HideHiddenTracebacks


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["serve"]:
        _serve()
    elif len(args) == 4 and args[0] == "digest":
        print(digest(args[1], args[2], json.loads(args[3])))
    else:
        raise SystemExit("usage: python -m cnncourse.grading serve | digest QUESTION NAME JSON")


if __name__ == "__main__":
    main()
