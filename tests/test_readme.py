"""What the README tells a new user holds: its Python example runs and its stated results are the
package's results (the figures themselves are checked against torchvision and FlopCounterMode in
test_profile.py and the model tests)."""

from __future__ import annotations

import ast
import re

from cnncourse import models
from conftest import ROOT

README = (ROOT / "README.md").read_text()


def _claim(comment: str) -> int | None:
    """The integer a comment states: `# 32`, or `# [(5*5*3) + 1] * 8 = 608`; None for prose."""
    match = re.match(r"#\s*([\d_]+)\b", comment) or re.search(r"=\s*([\d_]+)\s*$", comment)
    return int(match.group(1).replace("_", "")) if match else None


def test_python_example_runs_and_its_comments_hold(capsys) -> None:
    block = re.search(r"^```python\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE).group(1)
    lines, namespace, checked = block.splitlines(), {}, 0
    for node in ast.parse(block).body:
        code = ast.get_source_segment(block, node)
        comment = lines[node.end_lineno - 1].partition("  #")[2]
        claim = _claim("#" + comment) if comment else None
        if isinstance(node, ast.Expr) and claim is not None:
            got = eval(compile(ast.Expression(node.value), "README.md", "eval"), namespace)
            assert got == claim, f"README says {code!r} gives {claim}, it gives {got}"
            checked += 1
        else:
            exec(compile(ast.Module([node], []), "README.md", "exec"), namespace)
    assert checked >= 3, "the example's stated results were not found"
    assert "Total MACs" in capsys.readouterr().out  # the printed per-layer table


def test_model_count_matches_the_registry() -> None:
    n_models, n_families = map(int, re.search(r"\((\d+), in (\d+) families\)", README).groups())
    assert (n_models, n_families) == (len(models.MODELS), len(models.FAMILIES))
