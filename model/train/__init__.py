"""Offline training: `python -m model.train` (the recipe in `recipe`), with augmentation
(`augment`), distillation from teachers (`distill`) and outlier exposure (`outliers`)."""
