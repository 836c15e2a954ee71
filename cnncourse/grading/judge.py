"""The judge: a separate, isolated Python process that draws the cases, computes and compares.

The kernel starts it (`cnncourse.grading.kernel.start_judge`) with ``python -I`` and talks to it
over pipes, one JSON request per line and one JSON reply per line (`_serve`). Nothing the student's
kernel patches reaches this process: the reference results, the comparisons and the digests of
compute answers are all made here. `main` is also the instructors' command line
(``python -m cnncourse.grading digest QUESTION NAME JSON_VALUE``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import zlib
from typing import Any

from cnncourse.grading.tasks import TASKS, Task


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


def _problem(got: dict, want: Any, task: Task) -> str | None:
    """What is wrong with one result, in words (None if it is right)."""
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
        if not abs(a - b) <= task.atol + task.rtol * abs(b)
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


def _verdict(name: str, hidden: bool, todo: list[dict], results: list[dict]) -> dict:
    kind, task = "hidden" if hidden else "visible", TASKS[name]
    failures = [
        (i, p)
        for i, (case, got) in enumerate(zip(todo, results, strict=True))
        if (p := _problem(got, task.reference(case), task))
    ]
    if not failures:
        return {"passed": True, "message": f"{name}: all {len(todo)} {kind} cases are right"}
    i, problem = failures[0]
    args = ", ".join(
        f"{k}.shape={tuple(v['shape'])}" if isinstance(v, dict) else f"{k}={v!r}"
        for k, v in todo[i].items()
    )
    where = "a random case" if hidden else f"cnncourse.grading.cases({name!r})[{i}]"
    lines = [
        f"{task.function}: {len(failures)} of {len(todo)} {kind} cases fail.",
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
                name, hidden = request["task"], request["op"] == "cases" and request["hidden"]
                task = TASKS[name]  # KeyError: unknown task
                seed = int.from_bytes(os.urandom(8), "big") if hidden else zlib.crc32(name.encode())
                r = random.Random(seed)
                todo = [] if hidden else list(task.fixed)
                count = task.hidden if hidden else task.visible
                todo += [task.cases(r) for _ in range(count - len(todo))]
                token = os.urandom(8).hex()
                if request["op"] == "cases":
                    pending[token] = (name, hidden, todo)
                reply = {
                    "cases": todo,
                    "forbidden": sorted(task.forbidden),
                    "autograd": task.autograd,
                    "token": token,
                }
            elif request["op"] == "judge":
                reply = _verdict(*pending.pop(request["token"]), request["results"])
            else:
                keys = ("question", "answers", "expected", "hints")
                reply = _answers_verdict(*(request[k] for k in keys))
        except Exception as error:  # the test cell in the kernel fails with this message
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["serve"]:
        _serve()
    elif len(args) == 4 and args[0] == "digest":
        print(digest(args[1], args[2], json.loads(args[3])))
    else:
        raise SystemExit("usage: python -m cnncourse.grading serve | digest QUESTION NAME JSON")
