"""Exercise 10's tasks (`cnncourse.grading.ex10`), without nbgrader: the checks run in this
process and talk to a real judge.

The references agree with torch's modules, `FlopCounterMode` and sums written here; the
questions' givens are torchvision's published figures and AlexNet's real shapes; a right
`count_macs` (forward hooks) and `pareto_front` written here pass the visible and fresh hidden
cases, typical mistakes fail with a message that says what is wrong first, and the course's or
torch's own counters fail as such. End-to-end grading of the notebook is in `test_grading.py`.
"""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal, localcontext
from itertools import pairwise

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse import grading
from cnncourse.grading import ex10

pytestmark = pytest.mark.usefixtures("one_thread")

TASKS = {n: t for n, t in grading.TASKS.items() if n.startswith("ex10.")}
ANSWERS = {n: t for n, t in TASKS.items() if t.answer}
META = torch.device("meta")


def torch_model(layers: list) -> nn.Sequential:
    """The model of `layers`, built here from the layers' names (not with `ex10.build`)."""
    kinds = {"Conv2d": nn.Conv2d, "BatchNorm2d": nn.BatchNorm2d, "ReLU": nn.ReLU,
             "MaxPool2d": nn.MaxPool2d, "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d,
             "Flatten": nn.Flatten, "Linear": nn.Linear}  # fmt: skip
    return nn.Sequential(*(kinds[name](*args) for name, *args in layers))


def flop_macs(model: nn.Module, x: torch.Tensor) -> int:
    """torch's own count (FLOPs, 2 per multiply-accumulate), halved."""
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def exact(expression: str, **givens: float) -> float:
    """`expression` evaluated in 60-digit decimals on the givens as written, then to a float."""
    with localcontext() as context:
        context.prec = 60
        values = {k: Decimal(repr(v)) for k, v in givens.items()}
        return float(eval(expression, {}, values))  # noqa: S307 (the test's own expressions)


def row_layer(row: list, previous: list | None) -> tuple[nn.Module | None, torch.Tensor | None]:
    """A torch layer with a summary row's weight and bias, and an input that gives the row's
    output shape (a conv at stride 1, no padding, on a side k - 1 larger: the same MACs)."""
    kind, out, weight, bias = row
    if kind == "Conv2d":
        _, c_in, kh, kw = weight
        x = torch.empty(1, c_in, out[1] + kh - 1, out[2] + kw - 1, device=META)
        return nn.Conv2d(c_in, out[0], (kh, kw), bias=bias, device=META), x
    if kind == "Linear":
        x = torch.empty(1, weight[1], device=META)
        return nn.Linear(weight[1], weight[0], bias=bias, device=META), x
    if kind == "BatchNorm2d":
        return nn.BatchNorm2d(weight[0], device=META), None
    return None, None


def closed_form(name: str, a: dict) -> object:
    """Each answer from torch's modules, FlopCounterMode, or decimal arithmetic written here."""
    key = name.split(".", 1)[1]
    if key in ("summary_params", "summary_macs"):
        total = 0
        for row in a["layers"]:
            layer, x = row_layer(row, None)
            if layer is not None and key == "summary_params":
                total += n_params(layer)
            elif x is not None:
                total += flop_macs(layer, x)
        return total
    if key == "peak_memory":  # the live tensors by identity: the input, a layer's in and out
        x = torch.empty(a["batch"], *a["shapes"][0], dtype=torch.float32, device=META)
        previous, peak = x, 0
        for shape in a["shapes"][1:]:
            out = torch.empty(a["batch"], *shape, dtype=torch.float32, device=META)
            live = {id(t): t for t in (x, previous, out)}
            peak = max(peak, sum(t.numel() * t.element_size() for t in live.values()))
            previous = out
        return peak
    forms = {
        "gain_per_gmac": "(top1_b - top1_a) / (gmacs_b - gmacs_a)",
        "throughput": "batch / seconds",
        "achieved_tflops": "2 * gmacs * 10**9 * batch / seconds / 10**12",
    }
    return exact(forms[key], **a)


# --- compute answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_references_agree_with_independent_references(name: str) -> None:
    task, r = ANSWERS[name], random.Random(name)
    for case in [*task.fixed, *(task.cases(r) for _ in range(12))]:
        assert json.loads(json.dumps(case)) == case
        assert task.reference(case) == closed_form(name, case), case


def test_the_givens_are_torchvisions_figures_and_real_shapes() -> None:
    from torchvision.models import ResNet18_Weights, ResNet50_Weights, alexnet

    for suffix, weights in (("a", ResNet18_Weights), ("b", ResNet50_Weights)):
        meta = weights.IMAGENET1K_V1.meta
        givens = ANSWERS["ex10.gain_per_gmac"].fixed[0]
        assert givens[f"top1_{suffix}"] == meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert givens[f"gmacs_{suffix}"] == meta["_ops"]
    resnet50 = ResNet50_Weights.IMAGENET1K_V1.meta["_ops"]
    assert ANSWERS["ex10.achieved_tflops"].fixed[0]["gmacs"] == resnet50
    features = alexnet().features.to(META)
    x, shapes = torch.empty(1, 3, 224, 224, device=META), [[3, 224, 224]]
    for layer in features:
        x = layer(x)
        shapes.append(list(x.shape[1:]))
    assert ANSWERS["ex10.peak_memory"].fixed[0]["shapes"] == shapes


def test_summary_rows_are_the_models_own() -> None:
    """The summaries (the visible one and drawn ones) hold each layer's real output and weight
    shapes; their totals are the model's parameters and FlopCounterMode's MACs."""
    assert ANSWERS["ex10.summary_params"].fixed[0]["layers"] == ex10.SMALL_SUMMARY
    r = random.Random(1)
    nets = [{"layers": ex10.SMALL_NET, "input_size": [3, 32, 32]}]
    nets += [ex10._net(r, grouped=bool(i % 2)) for i in range(10)]
    for net in nets:
        rows = ex10.summary_rows(net["layers"], net["input_size"])
        model = torch_model(net["layers"]).to(META).eval()
        x = torch.empty(1, *net["input_size"], device=META)
        want = []
        for layer in model:
            x = layer(x)
            w = getattr(layer, "weight", None)
            want.append([list(x.shape[1:]), None if w is None else list(w.shape)])
        assert [[out, w] for _, out, w, _ in rows] == want
        macs = ANSWERS["ex10.summary_macs"].reference({"layers": rows})
        params = ANSWERS["ex10.summary_params"].reference({"layers": rows})
        x = torch.empty(1, *net["input_size"], device=META)
        assert (params, macs) == (n_params(model), flop_macs(model, x))


def test_drawn_float_givens_are_away_from_rounding_ties() -> None:
    """The judge compares floats rounded to 4 decimals: an exact answer ending in 5 at the fifth
    decimal would let float errors decide; the drawn givens avoid it."""
    for name in ("ex10.gain_per_gmac", "ex10.throughput", "ex10.achieved_tflops"):
        task, r = ANSWERS[name], random.Random(name)
        for case in [*task.fixed, *(task.cases(r) for _ in range(200))]:
            scaled = Decimal(repr(closed_form(name, case))) * 10**4
            assert abs(scaled % 1 - Decimal("0.5")) > Decimal("1e-6"), case


def summary_params(layers):
    return sum(
        torch.Size(w).numel() + (w[0] if bias else 0) for _, _, w, bias in layers if w is not None
    )


def summary_macs(layers):
    total = 0
    for kind, out, w, _ in layers:
        if kind in ("Conv2d", "Linear"):
            positions = out[1] * out[2] if kind == "Conv2d" else 1
            total += torch.Size(w).numel() * positions
    return total


def peak_memory(shapes, batch):
    sizes = [torch.Size(s).numel() for s in shapes]
    live = [sizes[0] + (sizes[i - 1] if i > 1 else 0) + sizes[i] for i in range(1, len(sizes))]
    return 4 * batch * max(live)


HONEST = {
    "summary_params": summary_params,
    "summary_macs": summary_macs,
    "peak_memory": peak_memory,
    "gain_per_gmac": lambda top1_a, gmacs_a, top1_b, gmacs_b: (
        (top1_b - top1_a) / (gmacs_b - gmacs_a)
    ),
    "throughput": lambda batch, seconds: batch / seconds,
    "achieved_tflops": lambda gmacs, batch, seconds: 2 * gmacs * 1e9 * batch / seconds / 1e12,
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_working_passes_visible_and_hidden(name: str) -> None:
    grading.check_answer(f"ex10.{name}", HONEST[name])
    grading.check_answer(f"ex10.{name}", HONEST[name], hidden=True)


MISTAKES = {
    "summary_params": lambda layers: summary_params([r for r in layers if r[0] != "BatchNorm2d"]),
    "summary_macs": lambda layers: sum(  # batch norm's weights counted as MACs too
        torch.Size(w).numel() * torch.Size(out[1:]).numel() for _, out, w, _ in layers if w
    ),
    "peak_memory": lambda shapes, batch: (
        4
        * batch
        * max(  # the network's input forgotten
            torch.Size(a).numel() + torch.Size(b).numel() for a, b in pairwise(shapes)
        )
    ),
    "gain_per_gmac": lambda top1_a, gmacs_a, top1_b, gmacs_b: (top1_b - top1_a) / gmacs_b,
    "throughput": lambda batch, seconds: seconds / batch,
    "achieved_tflops": lambda gmacs, batch, seconds: gmacs * batch / seconds / 1e3,  # MACs
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_typical_mistakes_fail_without_the_expected_value(name: str) -> None:
    """Batch norm left out or counted as MACs, the input forgotten, MACs for FLOPs..."""
    for hidden in (False, True):
        with pytest.raises(grading.CheckFailed) as failure:
            grading.check_answer(f"ex10.{name}", MISTAKES[name], hidden=hidden)
        first = str(failure.value).splitlines()[0]
        assert first.startswith(f"{name}(") and first.endswith("expected a different value")


# --- count_macs --------------------------------------------------------------------------------


def count_macs(model, input_size):
    """MACs with forward hooks: each conv's weights meet every output position once."""
    total = []

    def hook(module, inputs, output):
        positions = output[0, 0].numel() if isinstance(module, nn.Conv2d) else 1
        total.append(module.weight.numel() * positions)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]  # fmt: skip
    with torch.no_grad():
        model(torch.zeros(1, *input_size))
    for h in handles:
        h.remove()
    return sum(total)


def no_groups(model, input_size):
    """k*k*C_in per output value, as if every conv saw all its input channels."""
    for m in model:
        if isinstance(m, nn.Conv2d):
            m.weight = nn.Parameter(torch.zeros(m.out_channels, m.in_channels, *m.kernel_size))
            m.groups = 1
    return count_macs(model, input_size)


def with_bias(model, input_size):
    extra = []

    def hook(module, inputs, output):
        if module.bias is not None:
            extra.append(output[0].numel())

    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m.register_forward_hook(hook)
    return count_macs(model, input_size) + sum(extra)


def flops(model, input_size):
    return 2 * count_macs(model, input_size)


def convs_only(model, input_size):
    total = []
    for m in model:
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(
                lambda mod, i, o: total.append(mod.weight.numel() * o[0, 0].numel())
            )
    model(torch.zeros(1, *input_size))
    return sum(total)


def with_flop_counter(model, input_size):
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_size))
    return counter.get_total_flops() // 2


def with_cnncourse(model, input_size):
    from cnncourse.profile import count_macs as theirs

    return theirs(model, input_size)


def hiding(model, input_size):
    """The watch turned off first, then cnncourse's counter."""
    import sys

    sys.setprofile(None)
    return with_cnncourse(model, input_size)


def test_count_macs_references_agree_with_flop_counter() -> None:
    for name in ("ex10.count_macs.plain", "ex10.count_macs.grouped"):
        task, r = TASKS[name], random.Random(name)
        for case in [*task.fixed, *(task.cases(r) for _ in range(30))]:
            assert json.loads(json.dumps(case)) == case
            model = torch_model(case["layers"]).to(META).eval()
            x = torch.empty(1, *case["input_size"], device=META)
            assert task.reference(case) == flop_macs(model, x), case
    grouped = [task.cases(random.Random(s)) for s in range(20) for task in [TASKS[name]]]
    assert all(any(row[0] == "Conv2d" and row[7] > 1 for row in c["layers"]) for c in grouped)


@pytest.mark.parametrize("task", ["ex10.count_macs.plain", "ex10.count_macs.grouped"])
def test_count_macs_with_forward_hooks_passes(task: str) -> None:
    grading.check_function(task, ex10.on_model(count_macs))
    grading.check_function(task, ex10.on_model(count_macs), hidden=True)


@pytest.mark.parametrize(
    ("task", "func", "message"),
    [
        ("ex10.count_macs.grouped", no_groups, r"it returned \d+, expected \d+"),
        ("ex10.count_macs.plain", with_bias, r"it returned \d+, expected \d+"),
        ("ex10.count_macs.plain", flops, r"it returned \d+, expected \d+"),
        ("ex10.count_macs.plain", convs_only, r"it returned \d+, expected \d+"),
        ("ex10.count_macs.plain", with_flop_counter, "torch.utils.flop_counter counts for you"),
        ("ex10.count_macs.grouped", with_cnncourse, "cnncourse.profile counts for you"),
        ("ex10.count_macs.plain", hiding, "sys.setprofile was changed"),
    ],
)
def test_count_macs_mistakes_and_borrowed_counters_fail(task: str, func, message: str) -> None:
    with pytest.raises(grading.CheckFailed) as failure:
        grading.check_function(task, ex10.on_model(func))
    text = str(failure.value)
    assert text.startswith("count_macs: ") and "ex10.count_macs" in text
    problem = re.search(r"problem: (.*)", text).group(1)
    assert re.search(message, problem), problem
    with pytest.raises(grading.CheckFailed) as failure:  # hidden: the expected value kept back
        grading.check_function(task, ex10.on_model(func), hidden=True)
    assert "a random case" in str(failure.value)
    assert not re.search(r"expected \d", str(failure.value))


def test_count_macs_stub_is_not_answered_and_hidden_cases_are_fresh() -> None:
    def stub(model, input_size):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="count_macs is not answered yet"):
        grading.check_function("ex10.count_macs.plain", ex10.on_model(stub))
    draws = [grading.TASKS["ex10.count_macs.grouped"].cases(random.Random(s)) for s in (1, 2)]
    assert draws[0] != draws[1]
    model = ex10.build(ex10.SMALL_NET)
    assert isinstance(model, nn.Sequential) and len(model) == len(ex10.SMALL_NET)
    with pytest.raises(ValueError, match="unknown layer"):
        ex10.build([["Identity"]])


# --- pareto_front ------------------------------------------------------------------------------


def pareto_front(points):
    """Cheapest first: a model is on the front when it beats every cheaper model's accuracy."""
    best, front = None, []
    for name, _, top1 in sorted(points, key=lambda p: p[1]):
        if best is None or top1 > best:
            front.append(name)
            best = top1
    return front


def dominated_kept(points):
    return [name for name, _, _ in sorted(points, key=lambda p: p[1])]


def most_macs_is_best(points):
    """The direction reversed: more MACs taken as better."""
    return pareto_front([[n, -m, t] for n, m, t in points])[::-1]


def unsorted(points):
    front = set(pareto_front(points))
    return [name for name, _, _ in points if name in front]


def test_pareto_front_visible_case_is_the_course_families() -> None:
    from torchvision.models import get_model_weights

    (case,) = list(TASKS["ex10.pareto_front"].fixed)
    names = [name for name, _, _ in case["points"]]
    assert names == list(ex10.FAMILIES)
    for name, gmacs, top1 in case["points"]:
        meta = get_model_weights(name).IMAGENET1K_V1.meta
        assert (gmacs, top1) == (meta["_ops"], meta["_metrics"]["ImageNet-1K"]["acc@1"])
    want = [  # by brute force: no other model at most as costly and at least as accurate
        n for n, m, t in sorted(case["points"], key=lambda p: p[1])
        if not any((m2, t2) != (m, t) and m2 <= m and t2 >= t for _, m2, t2 in case["points"])
    ]  # fmt: skip
    assert TASKS["ex10.pareto_front"].reference(case) == want
    assert "mobilenet_v2" in want and "vgg16" not in want


def test_pareto_front_passes_and_mistakes_fail() -> None:
    grading.check_function("ex10.pareto_front", pareto_front)
    grading.check_function("ex10.pareto_front", pareto_front, hidden=True)
    for wrong in (dominated_kept, most_macs_is_best, unsorted):
        with pytest.raises(grading.CheckFailed) as failure:
            grading.check_function("ex10.pareto_front", wrong)
        assert re.search(r"problem: it returned \[.*\], expected \[", str(failure.value))
        with pytest.raises(grading.CheckFailed) as failure:
            grading.check_function("ex10.pareto_front", wrong, hidden=True)
        assert "expected a different value" in str(failure.value)


def test_ties_keep_both_models() -> None:
    """Two models with the same MACs and accuracy: neither dominates the other."""
    case = {"points": [["a", 1.0, 70.0], ["b", 1.0, 70.0], ["c", 2.0, 69.0]]}
    assert TASKS["ex10.pareto_front"].reference(case) == ["a", "b"]
