"""cnncourse: the helper package of an open course on CNN architectures.

Imported by the book's chapters and by the exercises, never copied into them:

- `cnncourse.counting`: pure formulas (output sizes, parameters, MACs, receptive fields);
- `cnncourse.profile`: the same quantities measured on a real `nn.Module`, on the meta device;
- `cnncourse.grading`: helpers that the exercises' tests use.
"""

__version__ = "0.1.0"
