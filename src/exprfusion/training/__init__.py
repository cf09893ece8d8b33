"""One training run: configuration, optimisation, losses, the linear experts' fit, selection on the holdout,
checkpoints."""
