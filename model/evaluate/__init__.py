"""Evaluation: `python -m model.evaluate` (accuracy per kind in `digits`, whole numbers in
`numbers`, calibration in `calibration`, the tutorial's pictures in `plots`)."""
