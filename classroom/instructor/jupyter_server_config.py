"""The instructor's Jupyter server: nbgrader's formgrader and tools, usable without internet.

Start JupyterLab with this folder as the Jupyter config folder and its share/ on JUPYTER_PATH, from
the course folder (the repository's root or a copy of it), as book/classroom.md shows:

    JUPYTER_CONFIG_DIR=classroom/instructor JUPYTER_PATH=classroom/instructor/share jupyter lab

- The grading view typesets formulas with the MathJax that `make setup` keeps in the environment
  (``share/mathjax-*``), served at ``<base>/static/``; share/nbconvert/templates/base/
  mathjax.html.j2 points the formgrader's pages at it, instead of a CDN.
- JupyterLab's news and update checks are off: a class server need not reach the internet.
"""

import sys
from pathlib import Path

c = get_config()  # noqa: F821 (injected by traitlets)

# MathJax 3, unpacked by `make setup` (tests/browser.py fetches it from the npm registry)
mathjax = sorted(Path(sys.prefix, "share").glob("mathjax-*"))
c.ServerApp.extra_static_paths = [str(mathjax[-1])] if mathjax else []
c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": True,
    "nbgrader.server_extensions.course_list": True,
    "nbgrader.server_extensions.assignment_list": True,
    "nbgrader.server_extensions.validate_assignment": True,
}
