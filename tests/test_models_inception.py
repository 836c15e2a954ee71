"""GoogLeNet (Szegedy et al. 2015) and Inception v2/v3 (Szegedy et al. 2016) against the papers
and torchvision: table 1 of GoogLeNet row by row and its errata, the slides' cost examples, the
factorisations of "Rethinking the Inception Architecture" (figure 5: a 5x5 as two 3x3; figure 6:
n x n as 1 x n then n x 1), and the training-mode outputs of both networks.

Also torchvision's published figures, and real training steps of the two models that the
registry's real step (``test_models.py``, with the other registry-wide checks) finds too costly.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from models_helpers import (
    assert_all_grads,
    calibrate_bn,
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
)
from torch import nn

from cnncourse import counting
from cnncourse.models import googlenet, inception_blocks, inception_v3
from cnncourse.profile import count_macs, count_params, summarize

tvm = torchvision.models


@pytest.mark.slow
def test_googlenet_training_outputs_match_torchvision() -> None:
    """Training mode: (logits, aux2, aux1), with BN on batch statistics and the same dropout."""
    torch.manual_seed(0)
    reference = tvm.googlenet(
        weights=None, aux_logits=True, init_weights=True, transform_input=True
    )
    ours = googlenet.googlenet(transform_input=True)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    expected = reference(x)
    torch.manual_seed(1)
    got = ours(x)
    assert isinstance(got, googlenet.GoogLeNetOutputs)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_inception_v3_aux_head_matches_torchvision() -> None:
    """The auxiliary head runs only in training mode, on a 17x17 grid (a 299 input)."""
    torch.manual_seed(0)
    reference = tvm.inception_v3(weights=None, init_weights=True)
    x = torch.randn(2, 768, 17, 17)
    calibrate_bn(reference.AuxLogits, x)
    ours = inception_v3.inception_v3().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours.AuxLogits(x), reference.AuxLogits(x))


# --- GoogLeNet: Szegedy et al. 2015, table 1 ------------------------------------------------------

# Typed from the paper's table 1: output H (= W) and C, #1x1, #3x3 reduce, #3x3, #5x5 reduce,
# #5x5, pool proj, params (K), ops (M). conv2's "#3x3 reduce" and "#3x3" are its two convs.
TABLE1 = {
    "conv1": (112, 64, None, None, None, None, None, None, 2.7, 34),
    "conv2": (56, 192, None, 64, 192, None, None, None, 112, 360),
    "3a": (28, 256, 64, 96, 128, 16, 32, 32, 159, 128),
    "3b": (28, 480, 128, 128, 192, 32, 96, 64, 380, 304),
    "4a": (14, 512, 192, 96, 208, 16, 48, 64, 364, 73),
    "4b": (14, 512, 160, 112, 224, 24, 64, 64, 437, 88),
    "4c": (14, 512, 128, 128, 256, 24, 64, 64, 463, 100),
    "4d": (14, 528, 112, 144, 288, 32, 64, 64, 580, 119),
    "4e": (14, 832, 256, 160, 320, 32, 128, 128, 840, 170),
    "5a": (7, 832, 256, 160, 320, 32, 128, 128, 1072, 54),
    "5b": (7, 1024, 384, 192, 384, 48, 128, 128, 1388, 71),
    "linear": (1, 1000, None, None, None, None, None, None, 1000, 1),
}
TABLE1_DEPTH = [1, 2] + [2] * 9 + [1]  # the "depth" column: 22 layers with parameters
ERRATA_PARAMS = {"conv1", "4c", "5a"}  # the printed params that the docstring explains
ERRATA_OPS = {"conv1", "5a"}
MODULES = {"conv1": ["conv1"], "conv2": ["conv2", "conv3"], "linear": ["fc"]}
MODULES |= {row: [f"inception{row}"] for row in TABLE1 if row not in MODULES}


def table1_exact() -> dict[str, tuple[int, int]]:
    """(weights, MACs) of each row, from the row's own columns and the previous row's output."""
    exact, c_in = {}, 3
    for row, (hw, c_out, n1, r3, n3, r5, n5, pp, _, _) in TABLE1.items():
        if row == "conv1":
            convs = [(3, 64, 7)]
        elif row == "conv2":
            convs = [(c_in, r3, 1), (r3, n3, 3)]
        elif row == "linear":
            convs = [(c_in, c_out, 1)]  # a linear layer is a 1x1 conv at one position
        else:
            assert n1 + n3 + n5 + pp == c_out  # the table's own columns agree with its output
            convs = [(c_in, n1, 1), (c_in, r3, 1), (r3, n3, 3), (c_in, r5, 1), (r5, n5, 5)]
            convs.append((c_in, pp, 1))
        weights = sum(counting.conv_params(a, b, k, bias=False) for a, b, k in convs)
        macs = sum(counting.conv_macs(a, b, k, hw) for a, b, k in convs)
        exact[row], c_in = (weights, macs), c_out
    return exact


@pytest.fixture(scope="module")
def paper_googlenet() -> googlenet.GoogLeNet:
    return on_meta(googlenet.googlenet_paper, aux_logits=False)


def test_googlenet_table1_rows_exact(paper_googlenet: nn.Module) -> None:
    """Our paper GoogLeNet has, row by row, exactly the weights and MACs of table 1's columns,
    and each row's output has the printed H x W x C."""
    summary = summarize(paper_googlenet, (3, 224, 224))
    exact = table1_exact()
    modules = dict(paper_googlenet.named_modules())
    shapes = {}
    hooks = [
        modules[MODULES[row][-1]].register_forward_hook(
            lambda m, i, o, row=row: shapes.__setitem__(row, tuple(o.shape[1:]))
        )
        for row in TABLE1
    ]
    with torch.no_grad():
        paper_googlenet(torch.empty(1, 3, 224, 224, device="meta"))
    for h in hooks:
        h.remove()
    for row, (hw, c_out, *_) in TABLE1.items():
        names = MODULES[row]
        layers = [
            m for n in names for m in modules[n].modules() if isinstance(m, nn.Conv2d | nn.Linear)
        ]
        weights = sum(m.weight.numel() for m in layers)
        macs = sum(
            r.macs for r in summary.rows for n in names if (r.name + ".").startswith(n + ".")
        )
        assert (weights, macs) == exact[row], row
        assert shapes[row] == ((c_out,) if row == "linear" else (c_out, hw, hw)), row
    # Depth: 1 per conv row, per linear, and the longest branch of each inception module.
    depth = [1, 2] + [
        max(sum(isinstance(m, nn.Conv2d) for m in b.modules()) for b in module.children())
        for name, module in paper_googlenet.named_children()
        if name.startswith("inception")
    ]
    assert depth + [1] == TABLE1_DEPTH and sum(TABLE1_DEPTH) == 22


@pytest.mark.parametrize("row", TABLE1)
def test_googlenet_table1_printed_figures(row: str) -> None:
    """Printed params (K = 1024 weights) and ops (M = 10^6 MACs) agree with the exact counts,
    within 2% or the printed rounding (linear: 1.024M ops printed as 1M), except the errata
    explained in `cnncourse.models.googlenet`."""
    hw, *_, params_k, ops_m = TABLE1[row]
    weights, macs = table1_exact()[row]
    params_ok = abs(weights / 1024 - params_k) <= max(0.02 * params_k, 0.5)
    ops_ok = abs(macs / 1e6 - ops_m) <= max(0.02 * ops_m, 0.5)
    assert params_ok == (row not in ERRATA_PARAMS)
    assert ops_ok == (row not in ERRATA_OPS)
    printed_self_consistent = abs(params_k * 1024 * hw * hw / 1e6 / ops_m - 1) < 0.03
    if row in ("conv1", "5a"):  # (a), (c): the printed pair agrees with itself, not the layer
        assert printed_self_consistent
    if row == "4c":  # (b): the printed params contradict the printed (and exact) ops
        assert not printed_self_consistent


def test_googlenet_paper_totals(paper_googlenet: nn.Module) -> None:
    exact = table1_exact()
    total_macs = sum(m for _, m in exact.values())
    assert count_macs(paper_googlenet, (3, 224, 224)) == total_macs
    assert sum(ops for *_, ops in TABLE1.values()) == 1502  # the printed column: "1.5 billion"
    assert round(total_macs / 1e9, 2) == 1.58  # exact; conv1 accounts for +84M
    layers = [m for m in paper_googlenet.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    biases = sum(m.bias.numel() for m in layers)  # the paper's convs have biases, no BN
    assert count_params(paper_googlenet) == sum(w for w, _ in exact.values()) + biases
    # "12 times fewer parameters than AlexNet" (60M), i.e. ~5M: the table's network has ~7.0M
    assert count_params(paper_googlenet) > 60e6 / 12 * 1.3


def test_inception_slide_examples() -> None:
    """The slides' cost examples, each one a branch of a real module of the network."""
    model = on_meta(googlenet.googlenet_paper)
    # seeds/000: 28x28x192 -> 5x5 conv, 32 filters: 120M; with a 1x1 reduction to 16: 12.4M
    assert round(counting.conv_macs(192, 32, 5, 28) / 1e6) == 120
    assert round(count_macs(model.inception3a.branch3, (192, 28, 28)) / 1e5) == 124
    # seeds/004: 14x14x480 -> 5x5 conv, 48 filters: 112.9M; 1x1 to 16 then 5x5: 1.5M + 3.8M
    assert round(counting.conv_macs(480, 48, 5, 14) / 1e5) == 1129
    assert round(count_macs(model.inception4a.branch3[0], (480, 14, 14)) / 1e5) == 15
    assert round(count_macs(model.inception4a.branch3[1], (16, 14, 14)) / 1e5) == 38
    # seeds/002: naive module on 28x28x256 with 128 1x1, 192 3x3, 96 5x5: 854M, 28x28x672
    naive = googlenet.NaiveInceptionModule(256, 128, 192, 96)
    assert round(count_macs(naive, (256, 28, 28)) / 1e6) == 854
    assert naive(torch.randn(1, 256, 28, 28)).shape == (1, 672, 28, 28)
    # seeds/002 then claims 358M for the module with 1x1 reductions; its own six terms sum to
    # 271M (an erratum in the slides, recomputed here with the same module)
    reduced = googlenet.InceptionModule(256, 128, 64, 192, 64, 96, 64)
    assert round(count_macs(reduced, (256, 28, 28)) / 1e6) == 271


def test_inception_v3_factorisation() -> None:
    """Figure 6: 1x7 + 7x1 has 14/49 of the weights of a 7x7, with the same 7x7 field."""
    c = 64
    full = counting.conv_params(c, c, 7, bias=False)
    fact = inception_v3.factorized_conv(c, c, c, 7)
    convs = [m for m in fact.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.weight.numel() for m in convs) * 49 == full * 14
    assert [m.kernel_size for m in convs] == [(1, 7), (7, 1)]
    assert fact(torch.randn(1, c, 9, 11)).shape == (1, c, 9, 11)


# --- Inception v2/v3, figure 5: a 5x5 conv as two stacked 3x3 convs ----------------------------


def test_inception_fig5_shapes() -> None:
    """Figure 5 with the widths of GoogLeNet's (3a): 1x1 | 3x3 | 3x3-3x3 | pool proj."""
    cfg = googlenet.INCEPTION_CFG["3a"]  # in 192; 64 | 96 -> 128 | 16 -> 32 | pool 32
    with torch.device("meta"):
        module = inception_v3.InceptionFig5(*cfg)
    assert module.out_channels == TABLE1["3a"][1] == 256  # table 1: 3a outputs 28x28x256
    for size in [(28, 28), (7, 9), (1, 1)]:  # "same" padding everywhere: H and W are kept
        out = module(torch.empty(2, 192, *size, device="meta"))
        assert out.shape == (2, 256, *size)
    assert inception_v3.InceptionFig5 is inception_blocks.InceptionFig5


def test_inception_fig5_two_3x3_convs_have_18_25_of_the_weights_of_a_5x5() -> None:
    c = 32  # the double-3x3 branch with the same channels in and out: c -> c -> c
    module = inception_v3.InceptionFig5(64, 16, 16, 24, c, c, 16)
    stacked = [module.branch3x3dbl_2.conv, module.branch3x3dbl_3.conv]
    assert [m.kernel_size for m in stacked] == [(3, 3), (3, 3)]
    two_3x3 = sum(m.weight.numel() for m in stacked)
    one_5x5 = counting.conv_params(c, c, 5, bias=False)
    assert two_3x3 == 2 * counting.conv_params(c, c, 3, bias=False)
    assert two_3x3 * 25 == one_5x5 * 18  # per channel pair: 2 x 9 = 18 weights instead of 25
    # The same 5x5 window: receptive field of two 3x3/1 convs, and the input pixels that one
    # output of the two convs (linear, without BN and ReLU) depends on.
    assert counting.receptive_field([(3, 1), (3, 1)]) == 5
    x = torch.randn(1, c, 11, 11, requires_grad=True)
    (grad,) = torch.autograd.grad(stacked[1](stacked[0](x))[0, :, 5, 5].sum(), x)
    seen = grad.abs().sum((0, 1)) > 0
    assert seen.nonzero().min(0).values.tolist() == [3, 3]
    assert seen.nonzero().max(0).values.tolist() == [7, 7] and seen.sum() == 25


@pytest.mark.parametrize("row", googlenet.INCEPTION_CFG)
def test_inception_fig5_saves_weights_over_the_module_it_factorises(row: str) -> None:
    """Against GoogLeNet's module with the same widths (BN in both): only the branch that held
    the 5x5 differs, a 5x5 (r -> c) replaced by a 3x3 (r -> c), a BN and a 3x3 (c -> c)."""
    cfg = googlenet.INCEPTION_CFG[row]
    r, c = cfg[4], cfg[5]  # #5x5 reduce, #5x5
    with torch.device("meta"):
        original = googlenet.InceptionModule(*cfg, kernel_5x5=5, batch_norm=True)
        factorised = inception_v3.InceptionFig5(*cfg)
    extra = counting.conv_params(r, c, 3, bias=False) + counting.batchnorm_params(c)
    extra += counting.conv_params(c, c, 3, bias=False) - counting.conv_params(r, c, 5, bias=False)
    assert count_params(factorised) - count_params(original) == extra
    assert factorised.out_channels == original.out_channels


def test_inception_fig5_forward_backward() -> None:
    torch.manual_seed(0)
    module = inception_v3.InceptionFig5(24, 8, 8, 16, 4, 8, 8).train()
    x = torch.randn(2, 24, 9, 11)
    y = module(x)
    assert y.shape == (2, 8 + 16 + 8 + 8, 9, 11) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert_all_grads(module)


# --- real training steps (torchvision's published figures: test_models.py) ------------------------


def test_inception_v3_trains_for_real() -> None:
    # Without its auxiliary head, which needs a 17x17 grid (a 299 input), tested alone.
    torch.manual_seed(0)
    model = inception_v3.inception_v3(num_classes=3, aux_logits=False).train()
    out = model(torch.randn(2, 3, 75, 75))
    assert out.shape == (2, 3)
    out.square().mean().backward()
    assert_all_grads(model)
    aux = inception_v3.InceptionAux(768, 3).train()
    aux(torch.randn(2, 768, 17, 17)).sum().backward()
    assert_all_grads(aux)


@pytest.mark.slow
def test_googlenet_paper_trains_for_real() -> None:
    # No BN: a batch of one; the paper's auxiliary heads need a 224 input.
    torch.manual_seed(0)
    model = googlenet.googlenet_paper(num_classes=3).train()
    outputs = model(torch.randn(1, 3, 224, 224))
    assert len(outputs) == 3 and all(o.shape == (1, 3) for o in outputs)  # logits, two aux
    sum(o.square().mean() for o in outputs).backward()
    assert_all_grads(model)
