"""Scores and figures: metrics, the one scoring path, the linear baseline, evaluation of a model, plots."""
