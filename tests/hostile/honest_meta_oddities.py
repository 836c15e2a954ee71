"""Honest work with metadata oddities: an unknown graded cell worth 100 points, a test cell copied
above its answer, a test's points raised, a test cell turned into Markdown."""
# ruff: noqa

# %% before sizes
print("my own notes, marked as a graded cell by a broken extension")

# %% nbgrader +
{"grade": True, "grade_id": "bonus", "points": 100, "locked": False, "solution": False}

# %% copy test_size_a before sizes

# %% nbgrader test_output_size
{"points": 100}

# %% type test_warm_a
"markdown"
