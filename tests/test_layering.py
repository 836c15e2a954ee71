"""The package's imports point down its declared layers and never loop (`import_graph.py`).

The checks themselves are tested on a tiny package written here, so that each can fail.
"""

from __future__ import annotations

from pathlib import Path

import import_graph as graph


def test_no_import_points_up_or_across_the_layers() -> None:
    ups = graph.upward(graph.edges())
    assert not ups, "\n".join(f"{e.source}:{e.line} -> {e.target}" for e in ups)


def test_no_import_cycle() -> None:
    assert graph.cycles(graph.edges()) == []


def test_every_module_has_a_layer() -> None:
    for name in graph.modules():
        graph.layer_of(name)  # a ValueError names a module left out of LAYERS


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "cnncourse" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checks_find_an_upward_import_a_crossing_and_a_loop(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "__init__.py": "",
            "counting.py": "def f():\n    from cnncourse import meta\n",  # up, in a function
            "meta.py": "from cnncourse.counting import f\n",  # down: fine, but closes a loop
            "models/__init__.py": "from . import lenet\n",  # its own part: fine
            "models/lenet.py": "",
            "train/__init__.py": "",
            "train/checks.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from cnncourse.models import lenet\n"  # across
            ),
        },
    )
    found = graph.edges(root)
    kinds = {(e.source, e.target): e.kind for e in found}
    assert kinds == {
        ("cnncourse.counting", "cnncourse.meta"): "fn",
        ("cnncourse.meta", "cnncourse.counting"): "top",
        ("cnncourse.models", "cnncourse.models.lenet"): "top",
        ("cnncourse.train.checks", "cnncourse.models.lenet"): "type",
    }
    bad = {(e.source, e.target) for e in graph.upward(found)}
    assert bad == {
        ("cnncourse.counting", "cnncourse.meta"),
        ("cnncourse.train.checks", "cnncourse.models.lenet"),
    }
    assert graph.cycles(found) == [["cnncourse.counting", "cnncourse.meta"]]
    text, clean = graph.report(root)
    assert not clean and "cnncourse.counting <-> cnncourse.meta" in text
