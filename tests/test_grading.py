"""The exercises' grading, end to end, with the real nbgrader and its sqlite gradebook.

Temporary course directories get the repository's nbgrader_config.py and solutions/; nbgrader
generates the releases there (never in the repository), students "submit", and one
`nbgrader autograde` run per assignment and course grades them all: the solution, the untouched
release, and broken or hostile submissions (see `SUBMISSIONS`). The courses are graded at the
same time (the tests marked `slow`: about four minutes on two cores shared with other work). The
written answer of ex02 is graded by hand: autograde leaves its points to the instructor, and the
tests check that it does. The first tests are quick unit tests of `cnncourse.grading` itself.

Compute answers are the student's functions of the question's givens (`cnncourse.grading.answers`):
the tests show that a constant, a lookup table of the visible answers and a value found by looping
the visible check all fail the hidden cases, that honest working passes, and that each answer is
graded on its own (partial credit), in the unit tests and end to end (the `harvester` student).
"""

from __future__ import annotations

import ast
import hashlib
import html
import importlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from cnncourse import grading
from cnncourse.grading import kernel, tasks
from conftest import ROOT

NBGRADER = Path(sys.executable).parent / "nbgrader"
# every assignment of the course: each nbgrader source in solutions/ (a new exercise is graded too)
ASSIGNMENTS = tuple(sorted(p.name for p in (ROOT / "solutions").glob("ex[0-9]*") if p.is_dir()))
# Seconds a cell may run. The solutions' slowest cell takes about 3 s on an idle machine, but the
# first cell imports torch and starts the judge (another torch import) while the other courses'
# kernels do the same on 2 cores: 20 s was seen there. 40 s leaves room; the loops still end.
TIMEOUT = 40
# course -> assignment -> students: graded at the same time (nbgrader waits on its kernels a lot)
COURSES = {
    "broken": {"ex01_convolution": ["solution", "untouched", "tamper", "loop"]},
    "hostile": {"ex01_convolution": ["patcher", "lookup", "forger"]},
    "stubborn": {"ex01_convolution": ["stubborn", "honest", "shortcut"]},
    "pooling": {
        "ex02_parameters_and_cost": ["solution", "untouched"],
        "ex03_pooling": ["solution", "untouched", "cheat", "harvester"],
    },
}
# every later assignment: its solution (full marks) and its untouched release (0), each in a course
# of its own, so that they are graded side by side
COURSES |= {a: {a: ["solution", "untouched"]} for a in ASSIGNMENTS if a > "ex03_pooling"}
HIDDEN = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "hidden=True")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", *HIDDEN)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """A from-scratch convolution (the solution notebook's idea), for the unit tests."""
    padded = F.pad(x, (padding,) * 4)
    kh, kw = weight.shape[2:]
    h_out = (padded.shape[2] - kh) // stride + 1
    w_out = (padded.shape[3] - kw) // stride + 1
    out = x.new_zeros(x.shape[0], weight.shape[0], h_out, w_out)
    for u in range(kh):
        for v in range(kw):
            taps = padded[:, :, u::stride, v::stride][:, :, :h_out, :w_out]
            out += torch.einsum("nchw,oc->nohw", taps, weight[:, :, u, v])
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def conv2d_input_grad(grad_out, weight, input_size, stride=1, padding=0):
    """The gradient of conv2d with respect to its input, from scratch, for the unit tests."""
    (h_out, w_out), (h, w) = grad_out.shape[2:], input_size
    grad = grad_out.new_zeros(grad_out.shape[0], weight.shape[1], h + 2 * padding, w + 2 * padding)
    for u in range(weight.shape[2]):
        for v in range(weight.shape[3]):
            taps = grad[:, :, u::stride, v::stride][:, :, :h_out, :w_out]
            taps += torch.einsum("nohw,oc->nchw", grad_out, weight[:, :, u, v])
    return grad[:, :, padding : padding + h, padding : padding + w]


def max_pool2d_backward(x, grad_out, kernel_size, stride=None):
    """Max pooling's gradient, from scratch: each window's gradient to its first maximum."""
    stride = stride or kernel_size
    grad, (h_out, w_out) = torch.zeros_like(x), grad_out.shape[2:]
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, :, i * stride :, j * stride :][:, :, :kernel_size, :kernel_size]
            first = window.flatten(2).argmax(2)  # (N, C): the first maximum in reading order
            rows, cols = i * stride + first // kernel_size, j * stride + first % kernel_size
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    grad[n, c, rows[n, c], cols[n, c]] += grad_out[n, c, i, j]
    return grad


def points(assignment: str, manual: bool = False) -> float:
    """The points of an assignment's autograded tests (or of its manually graded answers)."""
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    cells = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    return sum(m["points"] for m in cells if m.get("grade") and m.get("solution", False) == manual)


def answer_points(assignment: str) -> dict[str, float]:
    """The points of each compute answer's test cell: {answer's name: points}."""
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return {
        m["grade_id"].removeprefix("test_"): m["points"]
        for c in nb.cells
        if "check_answer(" in c.source and (m := c.metadata["nbgrader"])
    }


def restart_judge() -> None:
    if kernel._judge:
        kernel._judge[0].kill()
        kernel._judge[0].wait()
        kernel._judge.clear()


# --- unit tests of cnncourse.grading (no nbgrader) ---------------------------------------------


ANSWERS = {name: task for name, task in grading.TASKS.items() if task.answer}


def answer_functions() -> dict[str, ast.FunctionDef]:
    """The solutions' compute-answer functions, by task name ("ex01.size_a"), parsed, not run."""
    found = {}
    for a in ASSIGNMENTS:
        nb = nbformat.read(ROOT / "solutions" / a / f"{a}.ipynb", as_version=4)
        for c in nb.cells:
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"):
                for node in ast.parse(c.source).body:
                    if isinstance(node, ast.FunctionDef) and f"{a[:4]}.{node.name}" in ANSWERS:
                        found[f"{a[:4]}.{node.name}"] = node
    return found


def test_every_answers_visible_case_is_its_questions_givens() -> None:
    """The signature's defaults (what the student reads) are the judge's one visible case."""
    found = answer_functions()
    assert set(found) == set(ANSWERS)
    slides = tasks._decode(tasks.SLIDES, torch.float64)
    for name, func in found.items():
        task, args = ANSWERS[name], func.args
        assert task.visible == 1 and len(task.fixed) == 1 and task.hidden >= 10, name
        names = [a.arg for a in args.args]
        assert not args.posonlyargs and len(args.defaults) == len(names), name  # all named givens
        assert names == list(task.fixed[0]), name
        for given, default in zip(names, args.defaults, strict=True):
            value = task.fixed[0][given]
            if isinstance(default, ast.Name):  # the notebook's tensors: the slides' image and W
                assert (given, default.id) in (("x", "image"), ("weight", "W")), name
                want = slides["x" if given == "x" else "weight"].reshape(value["shape"])
                assert tasks._decode({given: value}, torch.float64)[given].equal(want)
            else:
                assert json.loads(json.dumps(ast.literal_eval(default))) == value, (name, given)


def test_every_answer_has_its_own_test_cell_with_points() -> None:
    """Partial credit per answer: one graded cell per answer, its visible and hidden checks only."""
    for a in ASSIGNMENTS:
        nb = nbformat.read(ROOT / "solutions" / a / f"{a}.ipynb", as_version=4)
        for c in nb.cells:
            checked = re.findall(r'check_answer\("([\w.]+)", (\w+)(, hidden=True)?\)', c.source)
            if checked:
                assert c.metadata.nbgrader["grade"] and c.metadata.nbgrader["points"] > 0
                (q, f, _), (q2, f2, hidden) = checked
                assert q == q2 == f"{a[:4]}.{f}" and f == f2 and hidden, c.source
                assert c.metadata.nbgrader["grade_id"] == f"test_{f}"
        assert len(answer_points(a)) == len([n for n in ANSWERS if n.startswith(a[:4])])


def closed_form(name: str, a: dict) -> float:
    """Each answer from torch modules or a closed-form sum written here (not cnncourse.counting)."""
    if name.startswith(("ex04.", "ex05.", "ex06.")):  # the later exercises' own, in their file
        from test_grading_modules import closed_form as later

        return later(name, a)
    if name.startswith(("ex07.", "ex08.", "ex09.", "ex10.")):  # each in its own test file
        own = importlib.import_module(f"test_grading_{name.split('.')[0]}")
        return own.closed_form(name, a)
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    def conv_side(n, k, s=1, p=0, d=1, **_):
        x = torch.empty(1, 1, n, n, device="meta")
        return nn.Conv2d(1, 1, k, s, p, d, device="meta")(x).shape[-1]

    def macs(model, x):
        with FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops() // 2

    def stack(p, layers, n=None, flops=False):
        depths = [p] + [d for _, d in layers]
        net = nn.Sequential(*[nn.Conv2d(i, d, k, padding=k // 2, device="meta") for i, (k, d) in
                              zip(depths, layers, strict=False)])  # fmt: skip
        if n is None:
            return sum(t.numel() for t in net.parameters())
        return macs(net, torch.empty(1, p, n, n, device="meta")) * (2 if flops else 1)

    def conv_macs(n, k, p, d):
        return macs(nn.Conv2d(p, d, k, padding=k // 2, device="meta"),
                    torch.empty(1, p, n, n, device="meta"))  # fmt: skip

    def window(x, weight, r, c, padding=0, flip=False):
        w = weight.flip(0, 1) if flip else weight
        out = F.conv2d(x[None, None], w[None, None], padding=padding)[0, 0]
        return out[r - 1 + padding, c - 1 + padding].item()

    def n_params(module):
        return sum(t.numel() for t in module.parameters())

    def meta(*shape):
        return torch.empty(*shape, device="meta")

    key = name.split(".")[1]
    t = tasks._decode(a, torch.float64)
    table = {
        "size": lambda: conv_side(**a),
        "warm_a": lambda: window(**t),
        "warm_b": lambda: window(**t, padding=1),
        "warm_c": lambda: window(**t, flip=True),
        "params": lambda: n_params(nn.Conv2d(a["p"], a["d"], a["k"])),
        "params_total": lambda: stack(**a),
        "macs": lambda: conv_macs(**a),
        "macs_total": lambda: stack(**a),
        "flops_total": lambda: stack(**a, flops=True),
        "dense_params": lambda: n_params(nn.Linear(a["inputs"], a["units"])),
        "dense_macs": lambda: macs(nn.Linear(a["inputs"], a["units"]), torch.empty(1, a["inputs"])),
        "conv_params": lambda: n_params(nn.Conv2d(a["p"], a["d"], a["k"])),
        "conv_macs": lambda: conv_macs(**a),
        "pool": lambda: F.max_pool2d(meta(1, 1, a["n"], a["n"]), a["k"], a["s"]).shape[-1],
        "global_values": lambda: F.adaptive_avg_pool2d(meta(1, a["c"], a["h"], a["w"]), 1).numel(),
        "pool_params": lambda: n_params(nn.MaxPool2d(a["k"])),
        "strided_conv": lambda: conv_side(**a),
        "rf_a": lambda: 1 + 2 * (a["k"] - 1),
        "rf_b": lambda: 1 + 3 * (a["k"] - 1),
        "rf_c": lambda: 1 + (a["k"] - 1) + (a["pool"] - 1) + (a["k"] - 1) * a["pool"],
        "rf_d": lambda: 1 + sum((a["k"] - 1) * a["s"] ** i for i in range(3)),
    }  # fmt: skip
    family = next(f for f in (key, key.rsplit("_", 1)[0]) if f in table)
    return table[family]()


def test_answer_references_agree_with_torch_and_closed_forms() -> None:
    for name, task in ANSWERS.items():
        r = random.Random(name)
        for case in [*task.fixed, *(task.cases(r) for _ in range(8))]:
            assert json.loads(json.dumps(case)) == case, name  # plain data, to the kernel
            assert task.reference(case) == closed_form(name, case), (name, case)


def test_honest_working_passes_and_each_answer_is_judged_on_its_own() -> None:
    def size_c(n, k, s, p):
        return (n + 2 * p - k) // s + 1

    def rf_c(k, pool):
        return k + (pool - 1) + (k - 1) * pool

    grading.check_answer("ex01.size_c", size_c)
    grading.check_answer("ex01.size_c", size_c, hidden=True)
    grading.check_answer("ex03.rf_c", rf_c, hidden=True)
    with pytest.raises(grading.CheckFailed):  # a wrong neighbour does not change this verdict
        grading.check_answer("ex01.size_b", lambda n, k, p: n - k + 1, hidden=True)
    grading.check_answer("ex01.size_c", size_c, hidden=True)


def test_a_constant_answer_fails_the_hidden_cases() -> None:
    """For every answer: the right visible value, typed in (or recovered), passes only visibly."""
    for name, task in ANSWERS.items():
        value = task.reference(task.fixed[0])

        def constant(value=value, **givens):
            return value

        grading.check_answer(name, constant)
        if name == "ex03.pool_params":  # the one answer that is a constant: max pooling learns 0
            grading.check_answer(name, constant, hidden=True)
            continue
        with pytest.raises(grading.CheckFailed, match="expected a different value") as failure:
            grading.check_answer(name, constant, hidden=True)
        assert "hidden cases (fresh givens) fail" in str(failure.value), name


def test_looping_the_visible_check_does_not_earn_the_hidden_points() -> None:
    found = None
    for guess in range(100):  # what a student can do with the visible self-check
        try:
            grading.check_answer("ex03.rf_d", lambda k, s, guess=guess: guess)
        except grading.CheckFailed:
            continue
        found = guess
        break
    assert found == 1 + sum(2 * 2**i for i in range(3))  # the loop finds the visible answer...
    with pytest.raises(grading.CheckFailed, match="expected a different value"):
        grading.check_answer("ex03.rf_d", lambda k, s: found, hidden=True)  # ...and no more


def test_a_table_of_the_visible_answers_fails_the_hidden_cases() -> None:
    table = {}
    for name in ("ex01.size_e", "ex02.macs_total", "ex01.warm_b"):
        task = ANSWERS[name]
        table[name, json.dumps(task.fixed[0])] = closed_form(name, task.fixed[0])

    def lookup(name):
        def answer(**givens):
            plain = {
                k: {"shape": list(v.shape), "values": v.reshape(-1).tolist()} if hasattr(v, "shape")
                else v for k, v in givens.items()
            }  # fmt: skip
            return table.get((name, json.dumps(plain)), 0)

        return answer

    for name in ("ex01.size_e", "ex02.macs_total", "ex01.warm_b"):
        grading.check_answer(name, lookup(name))
        with pytest.raises(grading.CheckFailed):
            grading.check_answer(name, lookup(name), hidden=True)


@pytest.mark.parametrize("hidden", [False, True])
def test_answer_messages_say_what_is_wrong_never_the_expected_value(hidden: bool) -> None:
    with pytest.raises(grading.CheckFailed) as failure:
        grading.check_answer("ex01.size_a", lambda n, k: n - k, hidden=hidden)  # off by one
    first = str(failure.value).splitlines()[0]
    assert re.fullmatch(r"size_a\(n=\d+, k=\d+\) returned \d+, expected a different value", first)
    if not hidden:
        assert first == "size_a(n=7, k=3) returned 4, expected a different value"
    n, k = map(int, re.findall(r"\d+", first)[:2])
    assert str(n - k + 1) not in re.sub(r"\(.*?\)", "", first).split()  # not the right value
    for stub in (lambda n, k: None, lambda n, k: (_ for _ in ()).throw(NotImplementedError())):
        with pytest.raises(NotImplementedError, match="size_a is not answered yet"):
            grading.check_answer("ex01.size_a", stub, hidden=hidden)
    with pytest.raises(grading.CheckFailed, match=re.escape("warm_a(x=<tensor")):
        grading.check_answer("ex01.warm_a", lambda x, weight, r, c: 0.0, hidden=hidden)


def test_check_function_passes_a_right_implementation_on_visible_and_hidden_cases() -> None:
    for task in ("conv2d.basic", "conv2d.channels", "conv2d.stride_padding"):
        grading.check_function(task, conv2d)
        grading.check_function(task, conv2d, hidden=True)


def test_visible_cases_are_fixed_and_start_with_the_slides_example() -> None:
    first, again = grading.cases("conv2d.basic"), grading.cases("conv2d.basic")
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(first, again, strict=True))
    out = F.conv2d(first[0]["x"], first[0]["weight"])[0, 0]
    assert out[0, 0].item() == 1.5  # the slides' first output value
    assert F.conv2d(first[0]["x"], first[0]["weight"], padding=1)[0, 0, 0, 1].item() == -1.5


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (lambda x, weight, bias: conv2d(x, weight), "values are wrong; at ["),
        (lambda x, weight, bias: conv2d(x, weight, bias)[..., 1:], "its output has shape"),
        (lambda x, weight, bias: F.conv2d(x, weight, bias), "uses torch's own `aten.convolution`"),
        (lambda x, weight, bias: F.unfold(x, 1), "uses torch's own `aten.im2col`"),
        (lambda x, weight, bias: x.tolist(), "not a torch.Tensor"),
        (lambda x, weight, bias: 1 / 0, "it raised ZeroDivisionError"),
    ],
)
def test_check_function_says_what_is_wrong(func, message: str) -> None:
    with pytest.raises(grading.CheckFailed, match=re.escape(message)):
        grading.check_function("conv2d.channels", func)


@pytest.mark.parametrize("hidden", [False, True])
def test_every_case_is_guarded_not_only_the_first(hidden: bool) -> None:
    calls = []

    def honest_once(x, weight, bias):  # from scratch on the first call, then torch's own
        calls.append(1)
        return conv2d(x, weight, bias) if len(calls) == 1 else F.conv2d(x, weight, bias)

    with pytest.raises(grading.CheckFailed, match=re.escape("torch's own `aten.convolution`")):
        grading.check_function("conv2d.channels", honest_once, hidden=hidden)
    assert len(calls) > 1


def test_hidden_cases_are_fresh_so_a_table_of_visible_cases_fails() -> None:
    table = {
        repr(c["x"].tolist()): F.conv2d(c["x"], c["weight"]) for c in grading.cases("conv2d.basic")
    }

    def lookup(x, weight):
        return table.get(repr(x.tolist()), torch.zeros(1, 1, 1, 1))

    grading.check_function("conv2d.basic", lookup)
    with pytest.raises(grading.CheckFailed, match="random case"):
        grading.check_function("conv2d.basic", lookup, hidden=True)


def test_results_are_judged_against_the_cases_sent() -> None:
    """Each batch of cases has its own token: results are judged against the cases they answer."""

    def curious(x, weight):  # looks at the visible cases in the middle of a hidden check
        grading.cases("conv2d.basic")
        return conv2d(x, weight)

    grading.check_function("conv2d.basic", curious, hidden=True)
    with pytest.raises(RuntimeError, match="KeyError"):  # an unknown (or used) token
        kernel._ask({"op": "judge", "token": "0123456789abcdef", "results": []})


def test_the_judge_is_out_of_reach_of_the_kernels_interrupt() -> None:
    """nbgrader interrupts a cell at its timeout by signalling the kernel's process group."""
    grading.start_judge()
    assert os.getpgid(kernel._judge[0].pid) != os.getpgid(0)


def test_patches_in_the_students_process_do_not_reach_the_judge(monkeypatch, tmp_path) -> None:
    """What a kernel patches after `cnncourse.grading` was imported does not change the verdict."""
    for name in ("torch", "json", "random", "cnncourse"):  # the judge ignores the working directory
        (tmp_path / f"{name}.py").write_text(
            "raise SystemExit('imported from the working directory')"
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.testing, "assert_close", lambda *a, **k: None)
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch.Tensor, "__eq__", lambda self, other: True)
    monkeypatch.setattr(F, "conv2d", lambda *a, **k: torch.zeros(1))  # the reference, if in-process
    monkeypatch.setattr("cnncourse.counting.conv_output_size", lambda *a, **k: 0)
    monkeypatch.setattr(json, "loads", lambda *a, **k: {"passed": True, "message": "forged"})
    monkeypatch.setattr(hashlib, "sha256", lambda *a: hashlib.md5(b"forged"))
    monkeypatch.setattr(subprocess, "Popen", None)
    monkeypatch.setattr(sys, "executable", "/bin/true")
    restart_judge()  # the glue starts its judge while everything is patched
    with pytest.raises(grading.CheckFailed):
        grading.check_function("conv2d.channels", lambda x, weight, bias: torch.zeros(1))
    with pytest.raises(grading.CheckFailed):
        grading.check_function("output_size", lambda **kw: 0)
    with pytest.raises(grading.CheckFailed):
        grading.check_answer("ex01.size_a", lambda n, k: 0)
    grading.check_function("conv2d.channels", conv2d)  # the right answer still passes


def test_the_gradients_from_scratch_pass_visible_and_hidden_cases() -> None:
    for task, func in (
        ("conv2d_input_grad", conv2d_input_grad),
        ("max_pool2d_backward", max_pool2d_backward),
    ):
        grading.check_function(task, func)
        grading.check_function(task, func, hidden=True)


def autograd_conv(grad_out, weight, input_size, stride=1, padding=0):
    """Right, through autograd: the backward pass of the from-scratch conv2d above."""
    x = torch.zeros(grad_out.shape[0], weight.shape[1], *input_size, requires_grad=True)
    return torch.autograd.grad(conv2d(x, weight, None, stride, padding), x, grad_out)[0]


def autograd_pool(x, grad_out, kernel_size, stride=None):
    """Right, through autograd and PyTorch's pooling."""
    x = x.clone().requires_grad_()
    return torch.autograd.grad(F.max_pool2d(x, kernel_size, stride), x, grad_out)[0]


def vjp_pool(x, grad_out, kernel_size, stride=None):
    """Right, through torch.func and a from-scratch max over the windows."""
    k, s = kernel_size, stride or kernel_size
    h_out, w_out = grad_out.shape[2:]

    def pool(t):
        taps = [t[:, :, u::s, v::s][:, :, :h_out, :w_out] for u in range(k) for v in range(k)]
        return torch.stack(taps).amax(0)

    return torch.func.vjp(pool, x)[1](grad_out)[0]


@pytest.mark.parametrize(
    ("task", "func", "message"),
    [
        ("conv2d_input_grad", autograd_conv, "it runs autograd"),
        ("conv2d_input_grad", lambda grad_out, weight, input_size, stride, padding: (
            torch.nn.grad.conv2d_input(
                (grad_out.shape[0], weight.shape[1], *input_size), weight, grad_out, stride, padding
            )
        ), "uses torch's own `aten.convolution_backward`"),
        ("conv2d_input_grad", lambda grad_out, weight, input_size, stride, padding: (
            F.conv_transpose2d(grad_out, weight, stride=stride, padding=padding)
        ), "uses torch's own `aten.convolution`"),
        ("conv2d_input_grad", lambda grad_out, weight, input_size, stride, padding: (
            conv2d_input_grad(grad_out, weight.flip(2, 3), input_size, stride, padding)
        ), "values are wrong"),
        ("max_pool2d_backward", autograd_pool, "uses torch's own `aten.max_pool2d_with_indices`"),
        ("max_pool2d_backward", vjp_pool, "it runs autograd"),
        ("max_pool2d_backward", lambda x, grad_out, kernel_size, stride: (
            max_pool2d_backward(-x, grad_out, kernel_size, stride)  # routed to the minimum
        ), "values are wrong"),
    ],
)  # fmt: skip
def test_gradient_shortcuts_and_mistakes_fail(task: str, func, message: str) -> None:
    with pytest.raises(grading.CheckFailed, match=re.escape(message)):
        grading.check_function(task, func)


def test_max_pool_gradient_ties_go_to_the_first_maximum_and_cases_have_none() -> None:
    """What ex03 states: PyTorch's tie rule (reading order), and cases drawn without ties."""
    x = torch.tensor([[[[1.0, 3.0, 3.0], [3.0, 3.0, 0.0]]]], requires_grad=True)
    F.max_pool2d(x, 2, 1).backward(torch.tensor([[[[1.0, 10.0]]]]))
    # both windows' first 3 in reading order is x[0, 1] (not x[1, 0] down the columns, nor the last)
    assert x.grad.tolist() == [[[[0.0, 11.0, 0.0], [0.0, 0.0, 0.0]]]]
    task = grading.TASKS["max_pool2d_backward"]
    for seed in range(300):
        x = tasks._decode(task.cases(random.Random(seed)), torch.float64)["x"]
        assert x.unique().numel() == x.numel()


def test_every_task_of_the_notebooks_is_declared_once() -> None:
    """The tasks the solutions check are the catalogue's, each entry draws and solves its cases."""
    used = set()
    for assignment in ASSIGNMENTS:
        nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
        for c in nb.cells:
            used |= set(re.findall(r'check_(?:function|answer|module)\("([\w.]+)"', c.source))
    assert used == set(grading.TASKS)
    for name, task in grading.TASKS.items():  # cases travel to the kernel as JSON: plain data
        case = task.cases(random.Random(0))
        assert json.loads(json.dumps(case)) == case and task.reference(case) is not None, name


def test_exercises_page_states_the_points_graded_by_hand() -> None:
    """book/exercises.md: the table's hand-graded points, and what autograde leaves of ex02's."""
    page = (ROOT / "book" / "exercises.md").read_text()
    for a in ASSIGNMENTS:
        row = re.search(rf"^\| `{a}`.*?\| (\d+) \| (\d+) \|", page, flags=re.MULTILINE)
        assert row and int(row.group(2)) == points(a, manual=True), a
    a = "ex02_parameters_and_cost"
    total = points(a) + points(a, manual=True)
    assert f"`{a}` has {points(a):g} of its {total:g} points until you" in " ".join(page.split())


# --- end to end with nbgrader ------------------------------------------------------------------


def nbgrader(course: Path, *args: str, ok: bool = True) -> str:
    """Run an nbgrader command in `course`; return its log."""
    # nbgrader runs `alembic` from PATH when it creates a gradebook: the environment's bin first
    env = {**os.environ, "PATH": f"{NBGRADER.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(NBGRADER), *args]
    run = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    log = run.stdout + run.stderr
    assert not ok or run.returncode == 0, f"{' '.join(cmd)} failed in {course}:\n{log[-5000:]}"
    return log


def notebook(course: Path, folder: str, assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(course / folder / assignment / f"{assignment}.ipynb", as_version=4)


def cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def answer(nb: nbformat.NotebookNode, grade_id: str, code: str) -> nbformat.NotebookNode:
    """Replace the release's stub in a cell by `code`, as a student does."""
    c = cell(nb, grade_id)
    stub = re.search(r"( *)# YOUR CODE HERE\n *raise NotImplementedError\(\)", c.source)
    c.source = c.source.replace(stub.group(0), textwrap.indent(code, stub.group(1)))
    return nb


def answer_all(nb: nbformat.NotebookNode, grade_id: str, code: str) -> nbformat.NotebookNode:
    """Replace every stub in a cell (each compute answer's function) by `code`."""
    c = cell(nb, grade_id)
    c.source = re.sub(
        r"( *)# YOUR CODE HERE\n *raise NotImplementedError\(\)",
        lambda m: textwrap.indent(code, m.group(1)),
        c.source,
    )
    return nb


def section_points(got: dict[str, float], assignment: str, names: str) -> float:
    """The points scored by the test cells of the named compute answers (space-separated)."""
    return sum(got[f"test_{n}"] for n in names.split())


def tamper(solution, release):
    """Edits and deletes test cells, with wrong answers and a wrong conv2d; one right function."""
    nb = answer(
        release,
        "output_size",
        "return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1",
    )
    answer(nb, "conv2d", "return torch.zeros(x.shape[0], weight.shape[0], 1, 1)")
    cell(nb, "test_size_a").source = "pass  # no test here"
    cell(nb, "test_conv2d_basic").source = "assert True"
    cell(nb, "test_output_size").metadata.nbgrader["points"] = 100
    stride_test = cell(nb, "test_conv2d_stride_padding")
    stride_test.metadata, stride_test.source = {}, "print('no longer a test')"
    nb.cells.remove(cell(nb, "test_conv2d_channels"))
    return nb


def loop(solution, release):
    """Right everywhere, but the cell that defines conv2d never ends."""
    cell(solution, "conv2d").source = "while True:\n    pass\n" + cell(solution, "conv2d").source
    return solution


def stubborn(solution, release):
    """Loops forever and ignores the interrupt that nbgrader sends at the timeout."""
    forever = "import time\n\nwhile True:\n    try:\n        time.sleep(1)  # idle: spare the CPU\n"
    cell(solution, "conv2d").source = forever + "    except KeyboardInterrupt:\n        pass\n"
    return solution


def patcher(solution, release):
    """Wrong answers, after patching what a test might rely on."""
    patches = """import sys, subprocess
import torch, torch.testing
import cnncourse, cnncourse.counting
torch.testing.assert_close = lambda *a, **k: None
torch.allclose = torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: True
torch.randn = lambda *shape, **k: torch.zeros(*shape)
cnncourse.counting.conv_output_size = lambda *a, **k: 0
subprocess.Popen = None
sys.executable = "/bin/true"
"""
    nb = answer_all(release, "sizes", "return 0")
    cell(nb, "sizes").source = patches + cell(nb, "sizes").source
    answer_all(nb, "warm_up", "return 0")
    answer(nb, "output_size", "return 0")
    answer(nb, "conv2d_input_grad", "return grad_out")
    return answer(nb, "conv2d", "return torch.randn(x.shape[0], weight.shape[0], 1, 1)")


def lookup(solution, release):
    """Right answers; functions that only know the visible cases (from `grading.cases`)."""
    cell(solution, "output_size").source = """from cnncourse import counting, grading

_sizes = {repr(c): counting.conv_output_size(**c) for c in grading.cases("output_size")}

def output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    key = dict(size=size, kernel_size=kernel_size, stride=stride, padding=padding)
    return _sizes.get(repr({**key, "dilation": dilation}), 1)
"""
    cell(solution, "conv2d").source = """import torch.nn.functional as F

def _key(x, weight, bias=None, stride=1, padding=0):
    return repr([x.tolist(), weight.tolist(), bias is None or bias.tolist(), stride, padding])

_table = {}
for _task in ("conv2d.basic", "conv2d.channels", "conv2d.stride_padding"):
    for _case in grading.cases(_task):
        _out = F.conv2d(_case["x"], _case["weight"], _case.get("bias"),
                        _case.get("stride", 1), _case.get("padding", 0))
        _table[_key(**_case)] = _out

def conv2d(x, weight, bias=None, stride=1, padding=0):
    return _table.get(_key(x, weight, bias, stride, padding), torch.zeros(1, 1, 1, 1))
"""
    return solution


def shortcut(solution, release):
    """Right everywhere, but the input gradient comes from autograd through the student's conv2d."""
    cell(
        solution, "conv2d_input_grad"
    ).source = """def conv2d_input_grad(grad_out, weight, input_size, stride=1, padding=0):
    x = torch.zeros(grad_out.shape[0], weight.shape[1], *input_size, requires_grad=True)
    out = conv2d(x, weight, stride=stride, padding=padding)
    return torch.autograd.grad(out, x, grad_out)[0]
"""
    return solution


def forger(solution, release):
    """Replaces the checks themselves: the residual risk documented in cnncourse.grading."""
    code = (
        "import cnncourse.grading as g\ng.check_answer = g.check_function = lambda *a, **k: None\n"
    )
    cell(release, "sizes").source = code + cell(release, "sizes").source
    return release


# The answers the harvester finds by looping the visible check, and its lookup table's answer.
LOOPED = "pool_a pool_b pool_c strided_conv rf_a rf_b rf_c rf_d"


def harvester(solution, release):
    """Loops the visible checks to recover the answers, then hands them in as constants.

    Its functions are the solution's, so only the harvested answers may lose points: each its own.
    `global_values` answers from a table of the visible givens; `pool_params` is a constant (0),
    the one answer that is right as a constant, so it keeps its points.
    """
    loop = """

from cnncourse.grading import CheckFailed, check_answer


def _harvest(question, lo=0, hi=200):
    for guess in range(lo, hi):
        try:
            check_answer(question, lambda *a, guess=guess, **kw: guess)
        except CheckFailed:
            continue
        return guess

"""
    rf = "\n\n"
    for name in LOOPED.split():
        line = f"{name} = lambda *a, _v=_harvest('ex03.{name}'), **kw: _v\n"
        loop, rf = (loop, rf + line) if name.startswith("rf") else (loop + line, rf)
    loop += "_table = {(40, 40, 100): _harvest('ex03.global_values')}\n"
    loop += "global_values = lambda h=40, w=40, c=100: _table.get((h, w, c), 1)\n"
    loop += "pool_params = lambda k=2, c=64: 0\n"
    cell(solution, "sizes").source += loop
    cell(solution, "receptive_fields").source += rf
    return solution


def cheat(solution, release):
    """Right answers, but pooling and its gradient by PyTorch's own functions."""
    for kind in ("max", "avg"):
        cell(solution, f"{kind}_pool2d").source = (
            f"import torch.nn.functional as F\n\ndef {kind}_pool2d(x, kernel_size, stride=None):\n"
            f"    return F.{kind}_pool2d(x, kernel_size, stride)"
        )
    cell(
        solution, "max_pool2d_backward"
    ).source = """def max_pool2d_backward(x, grad_out, kernel_size, stride=None):
    x = x.clone().requires_grad_()
    return torch.autograd.grad(F.max_pool2d(x, kernel_size, stride), x, grad_out)[0]
"""
    return solution


SUBMISSIONS = {
    "solution": lambda solution, release: solution,
    "untouched": lambda solution, release: release,
    "honest": lambda solution, release: solution,  # the solution, under another name
    **{
        f.__name__: f
        for f in (tamper, loop, stubborn, patcher, lookup, shortcut, forger, cheat, harvester)
    },
}


def grade_course(course: Path, assignments: dict[str, list[str]]) -> None:
    """Generate, submit, autograde and give feedback, as an instructor does."""
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for a, students in assignments.items():
        shutil.copytree(ROOT / "solutions" / a, course / "solutions" / a)
        nbgrader(course, "generate_assignment", a)
        for student in students:
            pair = notebook(course, "solutions", a), notebook(course, "exercises", a)
            folder = course / "submitted" / student / a
            folder.mkdir(parents=True)
            nbformat.write(SUBMISSIONS[student](*pair), folder / f"{a}.ipynb")
        # nbgrader gives up on a kernel that ignores the interrupt: that student is reported as
        # failed (score 0, flagged for manual grading) and the command exits with status 1
        # kernels over unix sockets: the courses grade side by side, and kernels that pick free TCP
        # ports at the same moment can collide ("Kernel died before replying to kernel_info")
        # (each course its own absolute socket prefix: the kernel runs in the notebook's folder)
        ipc = ("--KernelManager.transport=ipc", f"--KernelManager.ip={course / 'kernel'}")
        log = nbgrader(course, "autograde", a, f"--Execute.timeout={TIMEOUT}", *ipc, ok=False)
        assert "running over TCP" not in log, log[-2000:]
        failed = set(re.findall(r"error processing assignment '\S+' for student '(\S+)'", log))
        assert failed == ({"stubborn"} & set(students)), log[-5000:]
        nbgrader(course, "generate_feedback", a)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """All courses graded at the same time; returns {(assignment, student): course}."""
    base = tmp_path_factory.mktemp("grading")
    with ThreadPoolExecutor(len(COURSES)) as pool:
        runs = [pool.submit(grade_course, base / name, a) for name, a in COURSES.items()]
        for run in runs:
            run.result()
    return {
        (a, student): base / name
        for name, assignments in COURSES.items()
        for a, students in assignments.items()
        for student in students
    }


def score(graded, assignment: str, student: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded[assignment, student] / 'gradebook.db'}") as gb:
        return gb.find_submission(assignment, student).score


def cell_scores(graded, assignment: str, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded[assignment, student] / 'gradebook.db'}") as gb:
        return {
            g.name: g.score
            for g in gb.find_submission_notebook(assignment, assignment, student).grades
        }


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_the_committed_exercise(graded, assignment: str) -> None:
    ours = ROOT / "exercises" / assignment
    for course in {course for (a, _), course in graded.items() if a == assignment}:
        fresh = course / "exercises" / assignment
        assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in fresh.iterdir())
        for path in fresh.iterdir():
            assert (ours / path.name).read_bytes() == path.read_bytes(), (
                f"exercises/{assignment}/{path.name} is stale: run "
                f"`nbgrader generate_assignment {assignment} --force --no-db` in the repo root"
            )


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks_and_the_release_zero(graded, assignment: str) -> None:
    """Full marks of what autograde can award: manually graded answers wait for the instructor."""
    assert score(graded, assignment, "solution") == points(assignment), cell_scores(
        graded, assignment, "solution"
    )
    assert score(graded, assignment, "untouched") == 0


@pytest.mark.slow
def test_the_written_answer_waits_for_manual_grading(graded) -> None:
    from nbgrader.api import Gradebook

    a = "ex02_parameters_and_cost"
    assert points(a, manual=True) > 0
    with Gradebook(f"sqlite:///{graded[a, 'solution'] / 'gradebook.db'}") as gb:
        submission = gb.find_submission(a, "solution")
        assert submission.max_score == points(a) + points(a, manual=True)
        assert submission.needs_manual_grade
        answer = gb.find_grade("dense_vs_conv_why", a, a, "solution")
        assert answer.needs_manual_grade and answer.auto_score is None
        assert answer.max_score == points(a, manual=True)
        blank = gb.find_grade("dense_vs_conv_why", a, a, "untouched")  # "YOUR ANSWER HERE" as given
        assert blank.auto_score == 0 and not blank.needs_manual_grade
    release = notebook(graded[a, "untouched"], "exercises", a)
    assert cell(release, "dense_vs_conv_why").source == "YOUR ANSWER HERE"  # no rubric there


@pytest.mark.slow
def test_edited_and_deleted_tests_are_restored(graded) -> None:
    got = cell_scores(graded, "ex01_convolution", "tamper")
    assert got["test_output_size"] == 2  # the one right answer, at its original points
    assert got["test_size_a"] == got["test_conv2d_basic"] == 0  # edited: restored and run
    assert got["test_conv2d_channels"] == got["test_conv2d_stride_padding"] == 0  # deleted
    assert score(graded, "ex01_convolution", "tamper") == 2
    nb = notebook(graded["ex01_convolution", "tamper"], "autograded/tamper", "ex01_convolution")
    assert "size_a is not answered yet" in str(cell(nb, "test_size_a").outputs)  # the original
    assert "CheckFailed" in str(cell(nb, "test_conv2d_channels").outputs)


@pytest.mark.slow
def test_an_infinite_loop_is_interrupted_and_everything_else_graded(graded) -> None:
    got = cell_scores(graded, "ex01_convolution", "loop")
    assert got["test_output_size"] == 2
    ex01 = answer_points("ex01_convolution")
    assert all(got[f"test_{n}"] == p for n, p in ex01.items())  # every compute answer
    assert got["test_conv2d_basic"] == got["test_conv2d_channels"] == 0
    assert got["test_conv2d_input_grad"] == 3  # its own cell: graded after the interrupt
    assert score(graded, "ex01_convolution", "solution") == points("ex01_convolution")


@pytest.mark.slow
def test_a_loop_that_ignores_interrupts_scores_zero_and_the_run_goes_on(graded) -> None:
    assert score(graded, "ex01_convolution", "stubborn") == 0
    assert score(graded, "ex01_convolution", "honest") == points("ex01_convolution")  # same run


@pytest.mark.slow
def test_an_input_gradient_by_autograd_does_not_pass(graded) -> None:
    got = cell_scores(graded, "ex01_convolution", "shortcut")
    assert got["test_conv2d_input_grad"] == 0
    assert sum(got.values()) == points("ex01_convolution") - 3  # the rest is the solution's


@pytest.mark.slow
def test_patching_torch_and_cnncourse_does_not_fake_correctness(graded) -> None:
    assert score(graded, "ex01_convolution", "patcher") == 0
    # ...because the judge ran and found the answers wrong, not because the patches broke the glue
    nb = notebook(graded["ex01_convolution", "patcher"], "autograded/patcher", "ex01_convolution")
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    errors = [o for c in tests for o in c.outputs if o.output_type == "error"]
    assert len(errors) == len(tests) and all(o.ename == "CheckFailed" for o in errors)


@pytest.mark.slow
def test_a_table_of_the_visible_cases_fails_the_hidden_ones(graded) -> None:
    got = cell_scores(graded, "ex01_convolution", "lookup")
    assert all(got[f"test_{n}"] == p for n, p in answer_points("ex01_convolution").items())
    assert got["test_output_size"] == got["test_conv2d_basic"] == got["test_conv2d_channels"] == 0


@pytest.mark.slow
def test_torch_own_pooling_does_not_pass_as_from_scratch(graded) -> None:
    got = cell_scores(graded, "ex03_pooling", "cheat")
    assert got["test_max_pool2d"] == got["test_avg_pool2d"] == got["test_max_pool2d_backward"] == 0
    assert got["test_global_avg_pool2d"] == 1
    assert all(got[f"test_{n}"] == p for n, p in answer_points("ex03_pooling").items())


@pytest.mark.slow
def test_harvested_answers_score_zero_each_and_the_rest_full(graded) -> None:
    """Looped visible checks and a table of the visible answers: 0 per answer, partial credit."""
    a = "ex03_pooling"
    got, each = cell_scores(graded, a, "harvester"), answer_points(a)
    harvested = [*LOOPED.split(), "global_values"]
    assert all(got[f"test_{n}"] == 0 for n in harvested), got
    assert got["test_pool_params"] == each["pool_params"] > 0  # same former block, own points
    assert score(graded, a, "harvester") == points(a) - sum(each[n] for n in harvested)
    nb = notebook(graded[a, "harvester"], "autograded/harvester", a)
    visible = str(cell(nb, "test_rf_d").outputs)
    assert "rf_d(k=3, s=2): right" in visible  # the loop found the visible answer...
    assert "hidden cases (fresh givens) fail" in visible  # ...and the hidden cases failed it


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="plain nbgrader autograde reads the verdict from the student's kernel: use "
    "`cnncourse grade`, whose judge scores this 0 (tests/test_grader.py)",
)
def test_replacing_the_checks_themselves_is_not_caught(graded) -> None:
    assert score(graded, "ex01_convolution", "forger") == 0


def solution_lines(path: Path) -> list[str]:
    """Lines inside the solution and hidden-test regions of a source notebook."""
    lines, inside = [], False
    for c in nbformat.read(path, as_version=4).cells:
        for line in c.source.splitlines():
            if re.search(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)", line):
                inside = "BEGIN" in line
            elif inside and len(line.strip()) >= 12:
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_has_no_solution_or_hidden_test(assignment: str) -> None:
    secret = set(solution_lines(ROOT / "solutions" / assignment / f"{assignment}.ipynb"))
    assert len(secret) > 10
    for path in (ROOT / "exercises" / assignment).iterdir():
        text = path.read_text()
        assert not [m for m in MARKERS if m in text], path
        shown = {
            line.strip() for c in nbformat.reads(text, 4).cells for line in c.source.splitlines()
        }
        assert not shown & secret, f"{path.name} shows solution lines: {shown & secret}"


@pytest.mark.slow
def test_feedback_does_not_show_hidden_tests(graded) -> None:
    feedback = {}
    for (a, student), course in graded.items():
        for page in (course / "feedback" / student / a).glob("*.html"):
            feedback[a, student] = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
    assert len(feedback) == len(graded) - 1  # all but the stubborn loop
    for key, text in feedback.items():
        assert not [m for m in HIDDEN if m in text], key
    # nbgrader's autograded notebook has the hidden tests (its default feedback would show them)...
    course = graded["ex01_convolution", "lookup"]
    autograded = notebook(course, "autograded/lookup", "ex01_convolution")
    assert "hidden=True" in cell(autograded, "test_conv2d_basic").source
    # ...ours shows the failing hidden check's message, not its code
    page = feedback["ex01_convolution", "lookup"]
    assert "CheckFailed: conv2d: " in page and "a random case" in page


# --- the guard's coverage: every PyTorch path to the forbidden operators ----------------------


def test_the_forbidden_sets_hold_every_name_of_the_operators() -> None:
    """The names each back end gives convolution and pooling, where this PyTorch registers them."""
    registered = {n.split("::", 1)[1].split(".")[0] for n in torch._C._dispatch_get_all_op_names()}
    conv = ("convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose2d",
            "mkldnn_convolution", "cudnn_convolution", "_slow_conv2d_forward", "thnn_conv2d",
            "slow_conv_dilated2d", "slow_conv3d", "_conv_depthwise2d", "im2col", "unfold",
            "_fft_r2c", "convolution_backward")  # fmt: skip
    pool = ("max_pool1d", "max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool3d",
            "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool2d",
            "adaptive_max_pool3d", "fractional_max_pool2d", "fractional_max_pool3d",
            "mkldnn_max_pool2d", "max_unpool2d", "max_pool2d_with_indices_backward")  # fmt: skip
    for name in conv:
        assert name not in registered or name in tasks.CONV_OPS, name
    for name in pool + conv:
        assert name not in registered or name in tasks.POOL_OPS, name
    assert {"convolution", "_slow_conv2d_forward", "max_pool3d_with_indices"} <= registered
    assert not {"add", "mul", "sum", "mean", "amax", "einsum", "bmm", "slice"} & tasks.POOL_OPS


def _fft_conv(x, weight, bias=None):
    """Right, by the convolution theorem (torch.fft), not a sliding window."""
    h, w = x.shape[-2:]
    kh, kw = weight.shape[-2:]
    spectrum = torch.fft.rfft2(x, (h, w))[:, None] * torch.fft.rfft2(weight.flip(-2, -1), (h, w))
    out = torch.fft.irfft2(spectrum.sum(2), (h, w))[..., kh - 1 :, kw - 1 :]
    return out if bias is None else out + bias.view(1, -1, 1, 1)


CONV_PATHS = {
    "conv3d": lambda x, weight, bias: F.conv3d(x[:, :, None], weight[:, :, None], bias)[:, :, 0],
    "slow_conv2d": lambda x, weight, bias: torch.ops.aten._slow_conv2d_forward(
        x, weight, list(weight.shape[2:]), bias, [1, 1], [0, 0]
    ),
    "thnn_conv2d": lambda x, weight, bias: torch.ops.aten.thnn_conv2d(
        x, weight, list(weight.shape[2:]), bias
    ),
    "dilated": lambda x, weight, bias: torch.ops.aten.slow_conv_dilated2d(
        x, weight, list(weight.shape[2:]), bias
    ),
    "transposed": lambda x, weight, bias: F.conv_transpose2d(
        x,
        weight.transpose(0, 1).flip(-2, -1),
        bias,
        padding=(weight.shape[-2] - 1, weight.shape[-1] - 1),
    ),  # fmt: skip
    "tensor_unfold": lambda x, weight, bias: (
        torch.einsum(
            "nchwij,ocij->nohw",
            x.unfold(2, weight.shape[2], 1).unfold(3, weight.shape[3], 1),
            weight,
        )
        + (0 if bias is None else bias.view(1, -1, 1, 1))
    ),
    "fft": _fft_conv,
}
if torch.backends.mkldnn.is_available():
    CONV_PATHS["mkldnn"] = lambda x, weight, bias: torch.ops.aten.mkldnn_convolution(
        x, weight, bias, [0, 0], [1, 1], [1, 1], 1
    )


@pytest.mark.parametrize("path", list(CONV_PATHS))
def test_every_path_to_torchs_convolution_is_refused(path: str) -> None:
    func = CONV_PATHS[path]
    case = grading.cases("conv2d.channels")[0]  # each path is right: only the guard refuses it
    want = F.conv2d(case["x"], case["weight"], case.get("bias"))
    assert torch.allclose(func(case["x"], case["weight"], case.get("bias")), want, atol=1e-4)
    with pytest.raises(grading.CheckFailed, match="uses torch's own `aten."):
        grading.check_function("conv2d.channels", func)


POOL_PATHS = {
    "max_pool3d": lambda x, kernel_size, stride: F.max_pool3d(
        x[:, :, None], (1, kernel_size, kernel_size), (1, *(2 * [stride or kernel_size]))
    )[:, :, 0],
    "max_pool1d": lambda x, kernel_size, stride: F.max_pool1d(
        F.max_pool1d(x.flatten(0, 2), kernel_size, stride).unflatten(0, x.shape[:3])
        .transpose(2, 3).flatten(0, 2), kernel_size, stride,
    ).unflatten(0, (*x.shape[:2], -1)).transpose(2, 3),
    "fractional": lambda x, kernel_size, stride: F.fractional_max_pool2d(
        x, kernel_size, output_size=[(d - kernel_size) // (stride or kernel_size) + 1
                                     for d in x.shape[2:]],
    ),
    "adaptive": lambda x, kernel_size, stride: F.adaptive_max_pool2d(x, 1),
}  # fmt: skip


@pytest.mark.parametrize("path", list(POOL_PATHS))
def test_every_path_to_torchs_pooling_is_refused(path: str) -> None:
    with pytest.raises(grading.CheckFailed, match="uses torch's own `aten."):
        grading.check_function("max_pool2d", POOL_PATHS[path])
    with pytest.raises(grading.CheckFailed, match="uses torch's own `aten."):
        grading.check_function(  # aten sees only a mean here: refused by its Python name
            "global_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, 1)[..., 0, 0]
        )
    grading.check_function("global_avg_pool2d", lambda x: x.mean((2, 3)))  # the honest mean


def test_a_result_made_with_the_guard_off_is_flagged_for_review() -> None:
    """The guard runs in the student's kernel: turning it off is recorded by the grader's judge."""
    from cnncourse.grading import judge as judge_module

    def guard_off(x, weight, bias):  # both of the kernel's modes off
        with torch._C.DisableTorchFunction(), torch._C._DisableTorchDispatch():
            return F.conv2d(x, weight, bias)

    judge = judge_module.Judge()
    judge.cell = "test_conv2d_channels"
    for name, func in (("honest", conv2d), ("guard_off", guard_off)):
        reply = judge.handle({"op": "cases", "task": "conv2d.channels", "hidden": True})
        forbidden = frozenset(reply["forbidden"])
        results = [kernel._call(func, case, forbidden, True) for case in reply["cases"]]
        verdict = judge.handle({"op": "judge", "token": reply["token"], "results": results})
        assert verdict["passed"], (name, verdict)
    honest, off = judge.record["test_conv2d_channels"]
    assert "review" not in honest
    assert "not made under the operator guard" in off["review"]
