"""An IPython startup file in HOME that replaces the grading checks by passes in every kernel
started after it (only for kernels of this course: it never acts elsewhere on the machine).
The test checks that the real HOME's .ipython is unchanged."""
# ruff: noqa

# %% prepend sizes
import os
from pathlib import Path

_COURSE = next((str(p) for p in Path.cwd().parents if (p / "nbgrader_config.py").is_file()), "")
_STARTUP = Path.home() / ".ipython" / "profile_default" / "startup"
_STARTUP.mkdir(parents=True, exist_ok=True)
(_STARTUP / "00-cnncourse-hostile-corpus.py").write_text(
    f"""import os, sys
if os.getcwd().startswith({_COURSE!r} or "/nonexistent"):
    import cnncourse.grading as g
    g.check_function = g.check_answer = lambda *a, **k: print("right")
"""
)
