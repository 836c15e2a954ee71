"""cnncourse: the helper package of an open course on CNN architectures.

Imported by the book's chapters and by the exercises, never copied into them. One idea per module:

- `cnncourse.counting`: pure formulas on ints (output sizes, parameters, MACs, receptive fields);
- `cnncourse.meta`: a model run on PyTorch's meta device (shapes without data or memory);
- `cnncourse.profile`: the same quantities measured on a real `nn.Module`, on the meta device;
- `cnncourse.layers`: small blocks shared by several architectures;
- `cnncourse.models`: reference implementations of every architecture (`get_model(name)`), each
  described by a record (`SPECS[name]`: design input, task, in_channels, paper, torchvision twin);
- `cnncourse.data`: real datasets through torchvision, offline synthetic ones, GPU-resident batches;
- `cnncourse.train`: `fit` / `evaluate` with AMP, channels_last, compile, checkpoints and DDP;
- `cnncourse.losses`, `cnncourse.mfu`, `cnncourse.bench`, `cnncourse.bench_report`,
  `cnncourse.plot`: segmentation losses, training-step FLOPs and GPU peaks, the throughput
  benchmark and its tables, figures;
- `cnncourse.grading`: helpers that the exercises' tests use;
- `cnncourse.cli`: the `cnncourse` command (summary, train, bench).

Submodules are imported on demand, so `import cnncourse` stays cheap. Imports point down this list
(lowest first, roughly); ``python tests/import_graph.py`` prints the graph and its layers.
"""

__version__ = "0.1.0"
