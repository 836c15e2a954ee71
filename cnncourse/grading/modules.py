"""Module tasks: the student writes an ``nn.Module`` (a class, or a function that builds one), and
the judge checks it by behaviour, across the process boundary, as it checks a function.

A module task is a `Task` (`module_task` makes one) whose case is plain data:

- the constructor's keyword arguments (a random configuration: ``in_channels=4, stride=2``);
- ``x``: an input batch, as a shape and flat values;
- ``state_dict``: every tensor of the reference module built with that configuration, drawn at
  random by the judge (batch norm's running statistics too), as one flat list of values
  (``shape`` is its length) with the entries' ``names`` and ``shapes``;
- ``mode``: ``"eval"``, or ``"train"`` where batch norm must use the batch's statistics.

In the kernel, `check_module` builds the student's module with the configuration, compares its
state_dict's names and shapes with the case's (a missing, extra or misshaped entry is named),
loads the case's tensors with ``strict=True``, puts the module in the case's mode and runs it on
the input; it sends back the output and the parameter count, and the judge compares both with
the reference (cnncourse's own module, `cnncourse.models`, run in float64). A student module that
is, subclasses, holds, builds with or calls cnncourse's own modules fails with a message that
says so: the kernel checks the class's MRO and every submodule's class, watches every Python call
into ``cnncourse.models`` while the module is built and run, and flags any cnncourse module run
during the forward pass (a global forward pre-hook). Like the dispatch guard of the function
tasks, this is an honesty check, not a sandbox.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import warnings
from collections.abc import Callable
from typing import Any

from cnncourse.grading import kernel
from cnncourse.grading.tasks import Task, _t, first_wrong

__all__ = ["check_module", "module_task", "module_cases", "answer", "RESERVED"]

RESERVED = ("x", "state_dict", "mode")  # a case's other keys are the constructor's arguments
_ask, _CheckFailed = kernel._ask, kernel.CheckFailed  # taken at import, as the kernel's own
_setprofile, _getprofile = sys.setprofile, sys.getprofile


# --- the judge's side: cases, references, comparison ---------------------------------------------


def _state_values(module: Any, r: random.Random) -> dict:
    """Random values for every state_dict entry of `module`, by what the entry is.

    Conv and linear weights ~ N(0, 2 / fan_in) (He: activations keep their scale through a
    stack), biases and batch norm's shifts and running means small, its scales and running
    variances around 1 (variances > 0). Rounded to 4 decimals: short JSON, exact enough.
    """
    import torch

    names, shapes, values = [], [], []
    norms = {
        n for n, m in module.named_modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)
    }
    for name, tensor in module.state_dict().items():
        owner, _, leaf = name.rpartition(".")
        size = tensor.numel()
        if leaf == "num_batches_tracked":
            draw = [float(r.randint(0, 100))]
        elif leaf == "running_var":
            draw = [r.uniform(0.5, 2.0) for _ in range(size)]
        elif owner in norms and leaf == "weight":
            draw = [r.uniform(0.5, 1.5) for _ in range(size)]
        elif leaf == "weight":
            scale = math.sqrt(2 / (size // tensor.shape[0]))
            draw = [r.gauss(0, scale) for _ in range(size)]
        else:  # biases, shifts, running means
            draw = [r.uniform(-0.5, 0.5) for _ in range(size)]
        names.append(name)
        shapes.append(list(tensor.shape))
        values += [round(v, 4) for v in draw]
    return {"shape": [len(values)], "values": values, "names": names, "shapes": shapes}


def _state_dict(state: dict, dtypes: dict | None, default: Any) -> dict:
    """A case's ``state_dict`` as tensors, of each entry's own dtype where `dtypes` gives it."""
    import torch

    out, start = {}, 0
    for name, shape in zip(state["names"], state["shapes"], strict=True):
        size = math.prod(shape)
        dtype = dtypes.get(name, default) if dtypes else default
        flat = state["values"][start : start + size]
        out[name] = torch.tensor(flat, dtype=torch.float64).reshape(shape).to(dtype)
        start += size
    return out


def _reference(build: Callable[..., Any], case: dict) -> dict:
    """The reference module (cnncourse's) on one case, in float64: its output and its size."""
    import torch

    config = {k: v for k, v in case.items() if k not in RESERVED}
    module = build(**config).double()
    module.load_state_dict(_state_dict(case["state_dict"], None, torch.float64), strict=True)
    module.train(case["mode"] == "train")
    x = torch.tensor(case["x"]["values"], dtype=torch.float64).reshape(case["x"]["shape"])
    with torch.no_grad():
        out = module(x)
    params = sum(p.numel() for p in module.parameters())
    return {"output": out, "params": params, "mode": case["mode"]}


def _names(names: list[str]) -> str:
    """`a` or `a` (and 3 more): the first name of a list, short (nbgrader cuts long lines)."""
    return f"`{names[0]}`" + (f" (and {len(names) - 1} more)" if len(names) > 1 else "")


def _compare(atol: float, rtol: float, got: dict, want: dict, show: bool) -> str | None:
    """What is wrong with the student's module on one case, the first thing first; None if right."""
    if "kind" in got:
        return f"it built a {got['kind']}, not a torch.nn.Module"
    if "cnncourse" in got:
        return (
            f"it uses cnncourse's own `{got['cnncourse']}`: "
            "build the module yourself from torch.nn layers"
        )
    if "load" in got:
        load = got["load"]
        if load.get("missing") and load.get("unexpected"):
            return (
                f"its state_dict names differ from the stub's: no {_names(load['missing'])},"
                f" but {_names(load['unexpected'])}"
            )
        if load.get("missing"):
            return f"its state_dict lacks {_names(load['missing'])}: a layer missing or misnamed"
        if load.get("unexpected"):
            return (
                f"its state_dict has {_names(load['unexpected'])}, which the reference lacks: "
                "an extra layer or bias"
            )
        name, mine, theirs = load["shapes"][0]
        return f"its `{name}` has shape {tuple(mine)}, expected {tuple(theirs)}"
    if got["params"] != want["params"]:
        return f"it has {got['params']} parameters, expected {want['params']}"
    out = want["output"]
    if "shape" not in got:
        return f"its forward returned a {got.get('type')}, not a tensor"
    expected, shape = out.reshape(-1).tolist(), list(out.shape)
    if got["shape"] != shape:
        return f"its output has shape {tuple(got['shape'])}, expected {tuple(shape)}"
    if (found := first_wrong(got["values"], expected, shape, atol, rtol)) is None:
        return None
    count, index, a, b = found
    wrong = f"{count} of {len(expected)} output values are wrong; at {index} got {a:.5g}"
    wrong += f", expected {b:.5g}" * show
    if want["mode"] == "train":
        wrong += " (in train mode: batch norm normalises with the batch's own statistics)"
    return wrong


class _Fixed:
    """The visible cases that a task's visible check starts with, made on first use.

    They are cases like any other (a state drawn for the reference module), so they need torch:
    made when the judge first asks, not when the catalogue is imported (in every kernel too).
    """

    def __init__(self, make: Callable[[dict, random.Random], dict], configs: tuple, seed: str):
        self._make, self._configs, self._seed, self._cases = make, configs, seed, None

    def __len__(self) -> int:
        return len(self._configs)

    def __iter__(self) -> Any:
        if self._cases is None:
            r = random.Random(self._seed)
            self._cases = [self._make(dict(config), r) for config in self._configs]
        return iter(self._cases)


def module_task(
    function: str,
    build: Callable[..., Any],
    config: Callable[[random.Random], dict],
    input_shape: Callable[[dict, random.Random], tuple[int, ...]],
    *,
    fixed: tuple[dict, ...] = (),
    train: float = 0.0,
    visible: int = 3,
    hidden: int = 10,
    atol: float = 1e-3,
    rtol: float = 1e-3,
) -> Task:
    """A module task: `function` names the student's class (or function), `build` the reference.

    `config` draws the constructor's keyword arguments, `input_shape` the input's shape for a
    configuration; `fixed` lists configurations (with ``mode``: "eval" or "train") that the
    visible cases start with; a drawn case runs in train mode with probability `train`. Float32
    in the kernel against float64 in the judge, batch statistics of small batches: tolerances
    of 1e-3.
    """

    def make(kwargs: dict, r: random.Random) -> dict:
        mode = kwargs.pop("mode", None) or ("train" if r.random() < train else "eval")
        state = _state_values(build(**kwargs), r)
        return {**kwargs, "x": _t(r, *input_shape(kwargs, r)), "state_dict": state, "mode": mode}

    return Task(
        function,
        lambda r: make(config(r), r),
        lambda case: _reference(build, case),
        fixed=_Fixed(make, fixed, f"{function}{fixed!r}"),  # type: ignore[arg-type] (a lazy tuple of cases)
        visible=visible,
        hidden=hidden,
        atol=atol,
        rtol=rtol,
        compare=lambda got, want, show: _compare(atol, rtol, got, want, show),
    )


def answer(
    name: str, givens: dict, cases: Callable[[random.Random], dict], reference: Callable
) -> Task:
    """A compute answer of exercises 4-6, as `cnncourse.grading.answers` makes them: the question's
    givens are its one visible case, 20 fresh givens its hidden ones (plain arithmetic, cheap)."""
    return Task(name, cases, reference, fixed=(givens,), visible=1, hidden=20, answer=True)


def on_meta(build: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A module built on the meta device: shapes without memory, instantly, for any size."""
    import torch

    with torch.device("meta"):
        return build(*args, **kwargs)


# --- the kernel's side: build, load, run, report plain data --------------------------------------


def _ours(cls: type) -> str | None:
    """The first class in `cls`'s MRO that cnncourse defines (its dotted name), or None."""
    for c in cls.__mro__:
        if c.__module__.split(".")[0] == "cnncourse":
            return f"{c.__module__}.{c.__qualname__}"
    return None


@contextlib.contextmanager
def _watch(seen: list[str]) -> Any:
    """Record cnncourse's model code run inside: any Python call into ``cnncourse.models`` (a
    profile function) and any cnncourse module's forward (a global forward pre-hook)."""
    import torch

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and not seen:
            module = frame.f_globals.get("__name__", "")
            if module.startswith("cnncourse.models"):
                seen.append(f"{module}.{frame.f_code.co_name}")

    def pre_hook(module: Any, args: Any) -> None:
        if not seen and (found := _ours(type(module))):
            seen.append(found)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(pre_hook)
    previous = _getprofile()
    _setprofile(profile)
    try:
        yield
    finally:
        _setprofile(previous)
        handle.remove()


def _mismatch(module: Any, state: dict) -> dict | None:
    """How `module`'s state_dict differs from the case's (names and shapes), or None."""
    mine = {name: list(t.shape) for name, t in module.state_dict().items()}
    theirs = dict(zip(state["names"], state["shapes"], strict=True))
    missing = [n for n in theirs if n not in mine]
    unexpected = [n for n in mine if n not in theirs]
    shapes = [[n, mine[n], theirs[n]] for n in theirs if n in mine and mine[n] != theirs[n]]
    if missing or unexpected or shapes:
        return {"missing": missing, "unexpected": unexpected, "shapes": shapes}
    return None


def _run(build: Callable[..., Any], case: dict) -> dict:
    """Build the student's module for one case, load the case's state, run it: plain data back."""
    import torch

    config = {k: v for k, v in case.items() if k not in RESERVED}
    seen: list[str] = []
    try:
        # warnings off and stderr to stdout: nbgrader gives 0 points to a cell that writes to stderr
        with warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
            warnings.simplefilter("ignore")
            ours = _ours(build) if isinstance(build, type) else None
            if ours:
                return {"cnncourse": ours}
            with _watch(seen):
                module = build(**config)
            if not isinstance(module, torch.nn.Module):
                return {"kind": type(module).__name__}
            ours = next(filter(None, (_ours(type(m)) for m in module.modules())), None)
            if ours or seen:
                return {"cnncourse": ours or seen[0]}
            if load := _mismatch(module, case["state_dict"]):
                return {"load": load}
            dtypes = {name: t.dtype for name, t in module.state_dict().items()}
            state = _state_dict(case["state_dict"], dtypes, torch.float32)
            module.load_state_dict(state, strict=True)
            module.train(case["mode"] == "train")
            x = torch.tensor(case["x"]["values"], dtype=torch.float32).reshape(case["x"]["shape"])
            with _watch(seen), torch.no_grad():
                out = module(x)
            if seen:
                return {"cnncourse": seen[0]}
        params = sum(p.numel() for p in module.parameters())
        if not isinstance(out, torch.Tensor):
            return {"type": type(out).__name__, "params": params}
        flat = out.detach().to("cpu", torch.float64).reshape(-1).tolist()
        return {"shape": list(out.shape), "values": [float(v) for v in flat], "params": params}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:400]}


def module_cases(task: str) -> list[tuple[dict, dict, Any, str]]:
    """A module task's visible cases, to debug with: (kwargs, state_dict, x, mode) each.

    ``Net(**kwargs)`` builds the module, ``load_state_dict(state_dict)`` loads the case's
    tensors, ``.train(mode == "train")`` sets its mode, and ``x`` is the input batch.
    """
    import torch

    out = []
    for case in _ask({"op": "show", "task": task})["cases"]:
        kwargs = {k: v for k, v in case.items() if k not in RESERVED}
        state = _state_dict(case["state_dict"], None, torch.float32)
        state = {k: v.long() if k.endswith("num_batches_tracked") else v for k, v in state.items()}
        x = torch.tensor(case["x"]["values"]).reshape(case["x"]["shape"])
        out.append((kwargs, state, x, case["mode"]))
    return out


def check_module(task: str, build: Callable[..., Any], *, hidden: bool = False) -> None:
    """Check the student's module class (or builder function) `build` on the judge's cases.

    Raises `CheckFailed` with the judge's message, or NotImplementedError while `build` is still
    the released stub (building it, or running it, raises NotImplementedError on every case).
    """
    if not callable(build):
        raise _CheckFailed(f"{task}: expected a class or a function, got a {type(build).__name__}")
    reply = _ask({"op": "cases", "task": task, "hidden": hidden})
    results = [_run(build, case) for case in reply["cases"]]
    verdict = _ask({"op": "judge", "token": reply["token"], "results": results})
    if verdict.get("unanswered"):  # the stub as released: the usual "not done yet" error
        raise NotImplementedError(verdict["message"])
    if not verdict["passed"]:
        raise _CheckFailed(verdict["message"])
    print(verdict["message"])
