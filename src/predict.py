"""`python -m predict MODEL SPREADSHEET`: lg(k1) of new clusters from a trained n2react model.

MODEL is an MLflow run id (the parent run of `python -m train`), a model URI (runs:/...,
models:/...) or a run directory of `python -m train`. Model files are skops files that load
without running code, checked against the sha256 the run recorded; pickles of older runs load
only with --trust-pickle. The output never replaces the input; an existing output is replaced
only with --force. The CSV has cluster, y_pred, y_std
(spread over the fold models), in_domain, domain_reasons, nearest_training, y_lower/y_upper (a
conformal interval, --coverage 0.9 by default, calibrated on the run's held-out errors or on
its uncertainty.calibration_path file), interval_coverage (that nominal coverage),
expected_error (an estimate of |error|), flag_threshold (the expected error above which a
cluster is flagged), when the spreadsheet has an lg(k1) column, y_true
and residual, and row (the cluster's spreadsheet row: a name on several rows, isomers, is
predicted on each); the scores (r, RMSE, MAE, count within ±log10(3)) are printed.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None, prog: str = "python -m predict") -> int:
    """The command; stdout closed early (``--help | head``) ends it quietly (exit 141)."""
    from n2react.quiet import closed_stdout_ends_quietly

    return closed_stdout_ends_quietly(lambda: _main(argv, prog))


def _main(argv: list[str] | None, prog: str) -> int:
    from n2react.arguments import Parser
    from n2react.tracking import DEFAULT_URI

    parser = Parser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("model", help="MLflow run id, model URI, or a train run directory")
    parser.add_argument("data", help="spreadsheet (.xlsx/.csv) of clusters with descriptors")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="CSV to write (default: <data>_predictions.csv beside the data)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output (and nothing else)",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load pickled models (runs saved before model files became skops): loading a "
        "pickle runs code it names, so only for files you trust",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also write <output>_explain.csv: each cluster's SHAP value per descriptor",
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="also write <output>.png: each cluster's prediction and interval, flagged ones red",
    )
    parser.add_argument(
        "--coverage",
        type=float,
        default=0.9,
        help="nominal coverage of the y_lower..y_upper interval (default 0.9)",
    )
    parser.add_argument(
        "--sheet",
        default=None,
        help="sheet name of an .xlsx workbook, or its index from 0 (default: the first)",
    )
    parser.add_argument(
        "--tracking-uri", default=None, help=f"default: $MLFLOW_TRACKING_URI, else {DEFAULT_URI}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from n2react.data.sheets import TEXT_SUFFIXES, sheet_choice
    from n2react.errors import DataError, N2ReactError
    from n2react.inference import predict_sheet
    from n2react.terminal import predictions_table, scores_table, show

    sheet = sheet_choice(Path(args.data), args.sheet)  # a sheet named "1" is that sheet
    # beside the input, not in the working directory (a checkout, a job's scratch folder)
    output = args.output or f"{os.path.splitext(args.data)[0]}_predictions.csv"
    try:
        if args.sheet is not None and os.path.splitext(args.data)[1].lower() in TEXT_SUFFIXES:
            raise DataError(  # it was ignored: the first (only) table was read
                f"--sheet {args.sheet}: {args.data} is a text file, one table; --sheet chooses "
                "a sheet of an .xlsx workbook"
            )
        done = predict_sheet(
            args.model,
            args.data,
            output,
            args.tracking_uri,
            sheet,
            force=args.force,
            explain=args.explain,
            coverage=args.coverage,
            trust_pickle=args.trust_pickle,
            plot=args.plot,
            default_output=args.output is None,
        )
    except N2ReactError as exc:
        sys.stderr.write(f"n2react: error: {exc}\n")
        return 2
    table = done.table
    logging.getLogger("n2react").info("%d predictions written to %s", len(table), output)
    show(predictions_table(table, args.data, args.coverage))
    if done.scores:
        show(scores_table(done.scores, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
