"""Xception (Chollet 2017): the paper's parameter count and grid sizes.

The registry-wide checks are in ``test_models.py``.
"""

from __future__ import annotations

import pytest
from models_helpers import (
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
)

from cnncourse.models import xception
from cnncourse.profile import count_params, summarize

pytestmark = pytest.mark.usefixtures("one_thread")


# --- Xception: Chollet 2017 -----------------------------------------------------------------------


def test_xception_paper_params_and_grid() -> None:
    """Table 3: 22,855,952 parameters; figure 5: 19x19x728 in the middle flow for 299x299."""
    model = on_meta(xception.xception)
    assert count_params(model) == 22_855_952
    rows = {r.name: r for r in summarize(model, (3, 299, 299)).rows}
    assert rows["middle_flow.7.residual.8"].output_shape == (728, 19, 19)
    assert rows["exit_flow.6"].output_shape == (2048, 10, 10)
    sep = xception.SeparableConv2d(728, 728)  # depthwise 3x3 + pointwise, no bias
    assert count_params(sep) == 9 * 728 + 728 * 728
