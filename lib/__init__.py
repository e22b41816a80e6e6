"""`lib`: the package every chapter and experiment of the book runs on, in layers.

Imports point one way, downwards in this list (a test checks it):
- `cli`: the command line (`python -m lib ...`), on top of everything;
- `report`: what the pages show: choosing a profile, reading records and logs, statistics,
  tables, findings, figures and the essays' analyses. It reads records and data and never
  imports the trainer;
- `runs`: profiles, the one experiment matrix, running one run, result records, notebooks
  through papermill, and the GPU script;
- `core`: data, model, attention variants, training, evaluation, checkpoints;
- `demos`: the small worked examples of the chapters (single-query attention, the lookup
  task, causality checks), on top of `core` only.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
