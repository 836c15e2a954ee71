"""Run every page's Colab edition and every solution in a Colab-like runtime (`make test-colab`).

The runtime is the one this script runs in: a virtual environment with the oldest versions the
package declares (``pyproject.toml``'s floors), Python 3.12 as on Colab, and no nbgrader or Jupyter
Book (a student's Colab has neither). Each notebook runs top to bottom with papermill in a kernel
of this same interpreter, and every number of a Colab edition's prose must have been filled in;
the result is a Markdown table (notebook, result, seconds) for the
README, followed by the runtime's versions.

    make test-colab            # builds .venv-colab, then runs this script in it
"""

from __future__ import annotations

import importlib.util
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book" / "colab").glob("*.ipynb"))
NOTEBOOKS += sorted((ROOT / "solutions").glob("*/*.ipynb"))


def _unfilled(executed: Path) -> int:
    """How many glue roles of the executed Colab edition showed no number (the paragraph ran
    before the code that computes it: `cnncourse.notebook.fill_glued`'s placeholder)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    texts = [
        str(out.get("data", {}).get("text/markdown", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    ]
    return sum(t.count("(not computed yet") for t in texts)


def main() -> int:
    import papermill as pm

    present = [m for m in ("nbgrader", "jupyter_book") if importlib.util.find_spec(m)]
    if present:
        print(f"not a Colab-like runtime: {present} installed", file=sys.stderr)
        return 2
    rows, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in NOTEBOOKS:
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(
                    str(path),
                    str(Path(tmp) / path.name),
                    cwd=str(path.parent),
                    kernel_name="python3",
                    progress_bar=False,
                    execution_timeout=600,
                )
                result = "ran"
                unfilled = _unfilled(Path(tmp) / path.name)
                if unfilled:
                    result, failed = f"ran, {unfilled} numbers not filled in", failed + 1
            except pm.PapermillExecutionError as e:
                result, failed = f"failed: {e.ename}: {str(e.evalue)[:80]}", failed + 1
            rows.append((path.relative_to(ROOT).as_posix(), result, time.perf_counter() - t0))
            print(f"{rows[-1][0]}: {result} ({rows[-1][2]:.0f} s)", file=sys.stderr, flush=True)
    print("| notebook | result | seconds |\n|---|---|---:|")
    for name, result, seconds in rows:
        print(f"| `{name}` | {result} | {seconds:.0f} |")
    libs = ", ".join(f"{p} {version(p)}" for p in ("torch", "torchvision", "numpy", "matplotlib"))
    print(f"\nPython {platform.python_version()}, {libs}; no nbgrader, no Jupyter Book.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
