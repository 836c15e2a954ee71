"""`cnncourse.notebook.glue`: the book's numbers reach the prose, with or without myst-nb."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cnncourse.notebook import GLUED, glue


def test_glue_returns_and_records_the_value() -> None:
    assert glue("test_ratio", 41.5) == 41.5
    assert GLUED["test_ratio"] == 41.5


def test_glue_works_without_myst_nb() -> None:
    # A chapter opened in Colab has no myst-nb: block its import and glue must still work.
    code = (
        "import sys; sys.modules['myst_nb'] = None\n"
        "from cnncourse.notebook import GLUED, glue\n"
        "assert glue('x', 3) == 3 and GLUED['x'] == 3\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["", None, 3])
def test_glue_names_a_bad_name(name: object) -> None:
    with pytest.raises(ValueError, match="name"):
        glue(name, 1)  # type: ignore[arg-type]


def test_a_glued_figure_is_shown_in_place_without_myst_nb() -> None:
    # In Colab the {glue:figure} directive is not rendered: the figure must show below its cell.
    code = (
        "import sys; sys.modules['myst_nb'] = None\n"
        "import IPython.display as d; shown = []; d.display = lambda v: shown.append(v)\n"
        "from matplotlib.figure import Figure\n"
        "from cnncourse.notebook import glue\n"
        "fig = Figure(); glue('fig', fig); glue('n', 3)\n"
        "assert shown == [fig], shown\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
