"""cnncourse: the helper package of an open course on CNN architectures.

Imported by the book's chapters and by the exercises, never copied into them. One idea per module:

- `cnncourse.counting`: pure formulas on ints (output sizes, parameters, MACs, receptive fields);
- `cnncourse.profile`: the same quantities measured on a real `nn.Module`, on the meta device;
- `cnncourse.layers`: small blocks shared by several architectures;
- `cnncourse.models`: reference implementations of every architecture (`get_model(name)`);
- `cnncourse.data`: real datasets through torchvision, offline synthetic ones, GPU-resident batches;
- `cnncourse.train`: `fit` / `evaluate` with AMP, channels_last, compile, checkpoints and DDP;
- `cnncourse.losses`, `cnncourse.bench`, `cnncourse.plot`: segmentation losses, the throughput
  benchmark, figures;
- `cnncourse.grading`: helpers that the exercises' tests use;
- `cnncourse.cli`: the `cnncourse` command (summary, train, bench).

Submodules are imported on demand, so `import cnncourse` stays cheap.
"""

__version__ = "0.1.0"
