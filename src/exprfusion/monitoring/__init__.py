"""Production monitoring: drift statistics, the request log, the drift report."""
