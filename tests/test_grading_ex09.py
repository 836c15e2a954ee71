"""Exercise 9's tasks (`cnncourse.grading.ex09`), without nbgrader: the checks run in this process
and talk to a real judge.

Functions written here (a transposed convolution by stamping the kernel, the crop and the
concatenation by index arithmetic, the border weight map by brute-force distances) pass the
visible and hidden cases; typical mistakes fail with a message that says what is wrong first;
PyTorch's own (transposed) convolutions and cnncourse's own code are refused. The references
agree with independent ones: `F.conv_transpose2d`, torch layers run on the meta device, the
package's FCN and sums written here. End-to-end grading of the notebook is in `test_grading.py`.
"""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnncourse import grading
from cnncourse.grading import ex09

pytestmark = pytest.mark.usefixtures("one_thread")

EX09 = {name: task for name, task in grading.TASKS.items() if name.startswith("ex09.")}
ANSWERS = {name: task for name, task in EX09.items() if task.answer}
META = torch.device("meta")


def fails(task: str, func, hidden: bool = False) -> str:
    """The problem of a failing check (the message's `problem:` line, or its first line)."""
    with pytest.raises(grading.CheckFailed) as failure:
        ex09.check_function(task, func, hidden=hidden)
    text = str(failure.value)
    assert text.startswith(f"{grading.TASKS[task].function}: "), text
    return re.search(r"problem: (.*)", text).group(1)


# --- the student's side, written here ------------------------------------------------------------


def conv_transpose2d(x, weight, stride=1, padding=0):
    """Each input value stamps its kernel (scaled) into the output, `stride` apart."""
    n, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    full = x.new_zeros(n, c_out, (h - 1) * stride + kh, (w - 1) * stride + kw)
    for i in range(h):
        for j in range(w):
            stamp = torch.einsum("nc,cokl->nokl", x[:, :, i, j], weight)
            full[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw] += stamp
    return full[:, :, padding : full.shape[2] - padding, padding : full.shape[3] - padding]


def crop_and_concat(skip, x):
    top = (skip.shape[2] - x.shape[2]) // 2
    left = (skip.shape[3] - x.shape[3]) // 2
    rows = torch.arange(top, top + x.shape[2])
    cols = torch.arange(left, left + x.shape[3])
    return torch.cat([skip[:, :, rows][:, :, :, cols], x], dim=1)


def border_weight_map(instances, w0=10.0, sigma=5.0, class_balance=True, mistake=""):
    """Every pixel's distance to every object's pixels, by brute force. `mistake`: "everywhere"
    (the border term on object pixels too), "squares" (d1^2 + d2^2 in the exponent)."""
    assert instances.dtype == torch.int64  # as the exercise promises
    h, w = instances.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    points = torch.stack([ys.flatten(), xs.flatten()], 1).double()  # (HW, 2)
    pairwise = torch.cdist(points, points)  # (HW, HW)
    ids = instances.flatten()
    weight = torch.ones(h * w, dtype=torch.float64)
    if class_balance:
        fg = ids > 0
        counts = {False: int((~fg).sum()), True: int(fg.sum())}
        present = sum(1 for c in counts.values() if c)
        shares = [h * w / (present * counts[bool(f)]) for f in fg.tolist()]
        weight = torch.tensor(shares, dtype=torch.float64)
    k = int(ids.max())
    if k >= 2:
        nearest = torch.stack([pairwise[:, ids == o].min(1).values for o in range(1, k + 1)])
        d1, d2 = nearest.sort(0).values[:2]
        gap = d1**2 + d2**2 if mistake == "squares" else (d1 + d2) ** 2
        border = w0 * torch.exp(-gap / (2 * sigma**2))
        weight = weight + (border if mistake == "everywhere" else torch.where(ids == 0, border, 0))
    return weight.view(h, w)


RIGHT = {
    "ex09.conv_transpose2d.channels": conv_transpose2d,
    "ex09.conv_transpose2d.stride_padding": conv_transpose2d,
    "ex09.crop_and_concat": crop_and_concat,
    "ex09.border_weights.plain": border_weight_map,
    "ex09.border_weights.balanced": border_weight_map,
}


def test_every_function_task_has_a_right_function_here() -> None:
    assert set(RIGHT) == {name for name, task in EX09.items() if not task.answer}


@pytest.mark.parametrize("task", sorted(RIGHT))
def test_right_functions_pass_visible_and_hidden_cases(task: str) -> None:
    ex09.check_function(task, RIGHT[task])
    ex09.check_function(task, RIGHT[task], hidden=True)


# --- typical mistakes ----------------------------------------------------------------------------


def unflipped_layout(x, weight, stride=1, padding=0):
    """weight read as (C_out, C_in, kh, kw), as a convolution's: wrong whenever C_in != C_out."""
    return conv_transpose2d(x, weight.transpose(0, 1), stride, padding)


def flipped_kernel(x, weight, stride=1, padding=0):
    """The kernel rotated by 180 degrees: the zero-insertion recipe's rotation done twice."""
    return conv_transpose2d(x, weight.flip(2, 3), stride, padding)


def padding_added(x, weight, stride=1, padding=0):
    """Padding that adds a border (as a convolution's) instead of removing one."""
    return F.pad(conv_transpose2d(x, weight, stride), (padding,) * 4)


def by_zero_insertion(x, weight, stride=1, padding=0):
    """Right, but through F.conv2d: the forbidden convolution under another name."""
    n, c, h, w = x.shape
    k = weight.shape[-1]
    spread = x.new_zeros(n, c, (h - 1) * stride + 1, (w - 1) * stride + 1)
    spread[:, :, ::stride, ::stride] = x
    return F.conv2d(spread, weight.flip(2, 3).transpose(0, 1), padding=k - 1 - padding)


@pytest.mark.parametrize(
    ("task", "func", "message"),
    [
        ("conv_transpose2d.channels", F.conv_transpose2d, "torch's own `aten.convolution`"),
        (
            "conv_transpose2d.stride_padding",
            lambda x, weight, stride, padding: nn.ConvTranspose2d(
                weight.shape[0], weight.shape[1], weight.shape[2:], stride, padding, bias=False
            )(x),
            "torch's own `aten.convolution`",
        ),
        ("conv_transpose2d.stride_padding", by_zero_insertion, "torch's own `aten.convolution`"),
        (
            "conv_transpose2d.channels",
            unflipped_layout,
            ("it raised RuntimeError", "its output has shape", "are wrong"),
        ),
        ("conv_transpose2d.channels", flipped_kernel, "values are wrong; at ["),
        ("conv_transpose2d.stride_padding", padding_added, "its output has shape"),
        (
            "crop_and_concat",
            lambda skip, x: torch.cat([x, crop_and_concat(skip, x)[:, : skip.shape[1]]], 1),
            "values are wrong; at [",
        ),
        (
            "crop_and_concat",
            lambda skip, x: torch.cat([skip[:, :, : x.shape[2], : x.shape[3]], x], 1),
            "values are wrong; at [",
        ),
        (
            "crop_and_concat",
            lambda skip, x: torch.cat([skip, x], 1),
            "it raised RuntimeError: Sizes of tensors must match",
        ),
        (
            "crop_and_concat",
            lambda skip, x: crop_and_concat(
                skip[:, :, (skip.shape[2] - x.shape[2]) % 2 :, (skip.shape[3] - x.shape[3]) % 2 :],
                x,
            ),  # an odd difference cropped at the top and left: off by one pixel
            "values are wrong; at [",
        ),
        (
            "border_weights.balanced",
            lambda instances, w0, sigma, class_balance: border_weight_map(
                instances, w0, sigma, False
            ),
            "values are wrong; at [",
        ),
        (
            "border_weights.plain",
            lambda **kw: border_weight_map(**kw, mistake="everywhere"),
            "values are wrong; at [",
        ),
        (
            "border_weights.plain",
            lambda **kw: border_weight_map(**kw, mistake="squares"),
            "values are wrong; at [",
        ),
        (
            "border_weights.balanced",
            lambda instances, w0, sigma, class_balance: torch.ones(instances.shape),
            "values are wrong; at [",
        ),
    ],
)
def test_a_wrong_function_fails_saying_what_is_wrong_first(task: str, func, message) -> None:
    for hidden in (False, True):
        text = fails(f"ex09.{task}", func, hidden)
        assert any(m in text for m in (message if isinstance(message, tuple) else [message])), text


def test_cnncourse_own_code_does_not_pass() -> None:
    """The package's weight map and its U-Net `Up` step give the right values: refused."""
    from cnncourse.losses import unet_weight_map
    from cnncourse.models.unet import Up

    def package_weights(instances, w0, sigma, class_balance):
        return unet_weight_map((instances > 0).long(), w0, sigma, instances, class_balance)

    def package_step(skip, x):
        step = Up(2, 1, padding=False)
        step.up, step.conv = nn.Identity(), nn.Identity()
        return step(x, skip)

    for task, func, name in [
        ("ex09.border_weights.balanced", package_weights, "cnncourse.losses.unet_weight_map"),
        ("ex09.crop_and_concat", package_step, "cnncourse.models.unet."),
    ]:
        text = fails(task, func, hidden=True)
        assert f"it raised OwnWorkError: it calls cnncourse's own `{name}" in text, text
    # the same functions, called outside the check, are right: the watch is what refuses them
    grading.check_function("ex09.border_weights.balanced", package_weights)
    ex09.check_function("ex09.border_weights.balanced", border_weight_map)


def test_the_stub_is_not_answered_yet_and_the_watch_is_removed() -> None:
    import sys

    def stub(skip, x):
        raise NotImplementedError()

    before = sys.getprofile()
    with pytest.raises(NotImplementedError, match="crop_and_concat is not answered yet"):
        ex09.check_function("ex09.crop_and_concat", stub, hidden=True)
    assert sys.getprofile() is before


def test_visible_cases_are_fixed_and_the_weights_start_with_the_papers_values() -> None:
    first, again = (
        grading.cases("ex09.border_weights.plain"),
        grading.cases("ex09.border_weights.plain"),
    )
    assert all(a["instances"].equal(b["instances"]) for a, b in zip(first, again, strict=True))
    assert (first[0]["w0"], first[0]["sigma"]) == (10.0, 5.0)  # the paper's
    assert int(first[0]["instances"].max()) == 3


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_cases_are_plain_data_small_and_fresh_per_draw(name: str) -> None:
    task = EX09[name]
    drawn = [task.cases(random.Random(seed)) for seed in range(12)]
    for case in drawn:
        assert json.loads(json.dumps(case)) == case
        tensors = [v for v in case.values() if isinstance(v, dict)]
        assert all(math.prod(t["shape"]) <= 600 for t in tensors), case  # small: cheap to send
    assert len({json.dumps(c) for c in drawn}) == len(drawn)
    assert task.hidden <= 12 and task.visible <= 4


def test_crop_cases_include_odd_and_zero_differences() -> None:
    r = random.Random(0)
    diffs = set()
    for _ in range(40):
        case = EX09["ex09.crop_and_concat"].cases(r)
        diffs |= {
            s - t for s, t in zip(case["skip"]["shape"][2:], case["x"]["shape"][2:], strict=True)
        }
    assert {0, 1, 2, 3} <= diffs


def test_weight_cases_have_two_or_more_objects_mostly_and_background_always() -> None:
    r = random.Random(0)
    objects = []
    for _ in range(40):
        values = EX09["ex09.border_weights.plain"].cases(r)["instances"]["values"]
        objects.append(int(max(values)))
        assert 0.0 in values
    assert min(objects) == 1 and max(objects) >= 3 and sum(k >= 2 for k in objects) > 25


def test_function_references_are_torchs_and_the_weights_agree_with_brute_force() -> None:
    for name in RIGHT:
        task, r = EX09[name], random.Random(name)
        for case in [*task.fixed, *(task.cases(r) for _ in range(10))]:
            args = grading.tasks._decode(case, torch.float64)
            if "instances" in args:
                args["instances"] = args["instances"].long()
                want = border_weight_map(**args)
            elif "skip" in args:
                want = crop_and_concat(**args)
            else:
                want = F.conv_transpose2d(args["x"], args["weight"], stride=case.get("stride", 1),
                                          padding=case.get("padding", 0))  # fmt: skip
                assert torch.allclose(conv_transpose2d(**args), want)
            assert torch.allclose(task.reference(case).double(), want, atol=1e-5), (name, case)


# --- compute answers: against torch layers on the meta device, and the package's FCN -----------


def valid_unet(n: int, depth: int) -> tuple[list[int], list[int], int]:
    """A 1-channel U-Net of valid convolutions written here, run on the meta device: the
    contracting path's sides, the crop per border of each skip (top first), the output side."""

    def two(c: int = 1) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3), nn.ReLU()).to(META)

    x = two()(torch.empty(1, 1, n, n, device=META))
    skips = [x]
    for _ in range(depth):
        x = two()(nn.MaxPool2d(2)(x))
        skips.append(x)
    sides = [s.shape[-1] for s in skips]
    crops = []
    for skip in reversed(skips[:-1]):
        x = nn.ConvTranspose2d(1, 1, 2, stride=2, device=META)(x)
        margin = (skip.shape[-1] - x.shape[-1]) / 2
        assert margin.is_integer()  # a valid tile: the crop is centred
        crops.append(int(margin))
        x = two(2)(torch.cat([skip[..., : x.shape[-2], : x.shape[-1]], x], 1))
    return sides, crops[::-1], x.shape[-1]


def fcn_score_side(n: int) -> int:
    """VGG-16's layers as FCN's reference has them (pad 100, pools rounding up), then fc6."""
    layers, c = [], 3
    for i, v in enumerate([64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                           512, 512, 512, "M", 512, 512, 512, "M"]):  # fmt: skip
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers.append(nn.Conv2d(c, v, 3, padding=100 if i == 0 else 1, device=META))
            c = v
    layers.append(nn.Conv2d(512, 1, 7, device=META))
    return nn.Sequential(*layers)(torch.empty(1, 3, n, n, device=META)).shape[-1]


def closed_form(name: str, a: dict) -> object:
    """Each answer of exercise 9 from torch layers or sums written here (not cnncourse)."""
    key = name.split(".", 1)[1]
    if key == "tconv_size":
        layer = nn.ConvTranspose2d(1, 1, a["k"], a["s"], a["p"], a["output_padding"],
                                   dilation=a["d"], device=META)  # fmt: skip
        return layer(torch.empty(1, 1, a["n"], a["n"], device=META)).shape[-1]
    if key.startswith("unet_"):
        sides, crops, out = valid_unet(a["n"], a["depth"])
        return {"unet_sides": sides, "unet_crops": crops, "unet_output": out}[key]
    if key == "fcn_factors":  # halve the stride of the scores once per skip, then the rest
        stride, factors = 2 ** a["pools"], []
        while len(factors) < a["skips"]:
            factors, stride = [*factors, 2], stride // 2
        return [*factors, stride]
    if key == "fcn_score_side":
        return fcn_score_side(a["n"])
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_references_agree_with_independent_references(name: str) -> None:
    task, r = ANSWERS[name], random.Random(name)
    for case in [*task.fixed, *(task.cases(r) for _ in range(6))]:
        assert json.loads(json.dumps(case)) == case
        assert task.reference(case) == closed_form(name, case), case


def test_the_givens_are_the_papers_and_the_chapters() -> None:
    """U-Net's 572 -> 388 tile, FCN-8s's upsamplings and its 500 x 500 image, in the package's
    FCN (run on the meta device), and the chapter's question (7, 3x3, stride 2, padding 1)."""
    from cnncourse.models import get_model

    tasks = grading.TASKS
    out = tasks["ex09.unet_output"]
    assert out.fixed[0]["n"] == 572 and valid_unet(572, 4)[2] == out.reference(out.fixed[0])
    with META:
        fcn8s = get_model("fcn8s")
    strides = [fcn8s.upscore2.stride[0], fcn8s.upscore_pool4.stride[0], fcn8s.upscore.stride[0]]
    factors = tasks["ex09.fcn_factors"]
    assert factors.reference(factors.fixed[0]) == strides
    seen = []
    fcn8s.classifier.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    fcn8s(torch.empty(1, 3, 500, 500, device=META))
    side = tasks["ex09.fcn_score_side"]
    assert side.reference(side.fixed[0]) == seen[0]
    tconv = tasks["ex09.tconv_size"]
    assert tconv.reference(tconv.fixed[0]) == 2 * tconv.fixed[0]["n"]  # 7 -> 14: a doubling


def test_hidden_unet_tiles_are_valid_and_vary() -> None:
    from cnncourse.models.unet import unet

    r, seen = random.Random(0), set()
    for _ in range(30):
        case = ANSWERS["ex09.unet_sides"].cases(r)
        with META:
            unet(base_channels=1, depth=case["depth"]).output_size(case["n"])  # no ValueError
        seen.add((case["n"], case["depth"]))
    assert len({d for _, d in seen}) >= 4 and len(seen) >= 25
