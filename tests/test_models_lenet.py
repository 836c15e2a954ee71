"""LeNet-5 (LeCun et al. 1998): table I's C3 connections, the paper's parameter and connection
counts, the 61,706-parameter net as usually taught, the RBF output.

The registry-wide checks are in ``test_models.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from models_helpers import (
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
)

from cnncourse.counting import (
    conv_params,
    linear_params,
)
from cnncourse.models import lenet
from cnncourse.profile import count_params, summarize

pytestmark = pytest.mark.usefixtures("one_thread")


# --- LeNet-5, LeCun et al. 1998 ------------------------------------------------------------------

# Table I, as printed: row i = S2 map i, column j = C3 map j, "X" where they are connected.
PAPER_TABLE_1 = """
X   XXX  XXXX XX
XX   XXX  XXXX X
XXX   XXX  X XXX
 XXX  XXXX  X XX
  XXX  XXXX XX X
   XXX  XXXX XXX
"""


def test_c3_connections_are_paper_table_1() -> None:
    rows = PAPER_TABLE_1.strip("\n").split("\n")
    printed = [tuple(i for i in range(6) if rows[i][j] == "X") for j in range(16)]
    assert list(lenet.C3_TABLE) == printed


def test_partial_conv_uses_only_the_connected_maps() -> None:
    torch.manual_seed(0)
    c3 = lenet.PartialConv(lenet.C3_TABLE)
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    y = c3(x)
    assert y.shape == (1, 16, 10, 10)
    for j, maps in enumerate(lenet.C3_TABLE):
        (grad,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=True)
        seen = tuple(i for i in range(6) if grad[:, i].abs().sum() > 0)
        assert seen == maps


def test_lenet5_paper_parameters_and_connections() -> None:
    # Sec. II.B: trainable parameters and connections of each layer; "60,000 trainable parameters".
    paper = {  # layer: (parameters, connections)
        "c1": (156, 122_304),
        "s2": (12, 5_880),
        "c3": (1_516, 151_600),
        "s4": (32, 2_000),
        "c5": (48_120, 48_120),
        "f6": (10_164, 10_164),
    }
    model = lenet.lenet5_paper()
    assert count_params(model) == sum(p for p, _ in paper.values()) == 60_000
    rows = summarize(model, (1, 32, 32)).rows
    for layer, (params, connections) in paper.items():
        mine = [r for r in rows if r.name.split(".")[1] == layer and r.type != "AvgPool2d"]
        assert sum(r.params for r in mine) == params, layer
        outputs = sum(math.prod(r.output_shape) for r in mine)  # C3: 16 convs of 1 map each
        # a connection is a multiply (MACs), or the bias; an S unit has 4 inputs and a bias
        macs = sum(r.macs for r in mine)
        assert (macs + outputs if macs else 5 * outputs) == connections, layer


def test_lenet5_modern_is_the_61706_parameter_net() -> None:
    expected = (
        conv_params(1, 6, 5)
        + conv_params(6, 16, 5)  # full connectivity in C3
        + conv_params(16, 120, 5)
        + linear_params(120, 84)
        + linear_params(84, 10)  # an fc output instead of the fixed RBF units
    )
    assert count_params(lenet.lenet5()) == expected == 61_706


def test_rbf_output_picks_the_nearest_code() -> None:
    rbf = lenet.RBFOutput(84, 10)
    assert set(rbf.codes.unique().tolist()) == {-1.0, 1.0} and not list(rbf.parameters())
    y = rbf(rbf.codes)  # each code is at distance 0 from itself
    assert torch.equal(y.argmax(1), torch.arange(10)) and torch.equal(y.diagonal(), torch.zeros(10))
