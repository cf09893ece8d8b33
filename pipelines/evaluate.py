"""DVC stage `evaluate`: score models/model.pt → reports/metrics.json (headline scores, DVC metrics),
reports/evaluation.json (the whole report) and reports/plots/.

The metrics and plots are also attached to the MLflow run of the training (reports/registration.json). The line
comparing the model with its logistic-regression baseline is printed, with a warning when the model does not beat
it; the stage still succeeds (the evaluation is a report, not a gate). A line gives the macro-F1, the baseline's and
the margin with their 95 % bootstrap intervals over videos.
"""

from pathlib import Path

from exprfusion.core.params import corpus_folder, load_section
from exprfusion.core.progress import progress_callback
from exprfusion.core.stage_runner import run_stage
from exprfusion.evaluation.evaluate import EvaluateConfig, baseline_lines, evaluate_model
from exprfusion.evaluation.uncertainty import interval_line
from exprfusion.tracking.registry import log_evaluation, training_run_id

MODEL = Path("models/model.pt")
PLOTS = Path("reports/plots")
METRICS = Path("reports/metrics.json")  # the headline scores (DVC metrics)
REPORT = Path("reports/evaluation.json")  # the whole evaluation: every score and interval, settings, labels
REGISTRATION = Path("reports/registration.json")


def main() -> None:
    """Read the `evaluate` params and evaluate the model on the configured split."""
    config = load_section("evaluate", EvaluateConfig)
    run_id = training_run_id(REGISTRATION)  # checked before the evaluation spends its time
    with progress_callback(f"evaluate {config.split}") as update:
        metrics = evaluate_model(
            MODEL,
            corpus_folder(),
            metrics_path=METRICS,
            report_path=REPORT,
            plots_dir=PLOTS,
            config=config,
            progress=update,
        )
    log_evaluation(run_id, metrics, PLOTS)
    print(f"macro_f1 {metrics['macro_f1']:.4f}  accuracy {metrics['accuracy']:.4f}")
    print(f"wrote {METRICS}, {REPORT} and {PLOTS}/")
    summary, warnings = baseline_lines(metrics)
    intervals = interval_line(metrics)
    for line in ([intervals] if intervals else []) + ([summary] if summary else []) + warnings:
        print(line)


if __name__ == "__main__":
    run_stage(main)
