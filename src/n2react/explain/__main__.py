"""`python -m n2react.explain RUN`: every explanation figure of a finished run, without training.

RUN is a run directory of `python -m train` or an MLflow parent run id. Writes PNG + CSV files to
<RUN>/explain/ (an MLflow run: ./explain-<run id>/; --out changes it) and lists them.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None, prog: str = "python -m n2react.explain") -> int:
    from n2react.arguments import Parser
    from n2react.tracking import DEFAULT_URI

    parser = Parser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run directory of python -m train, or an MLflow run id")
    parser.add_argument(
        "--tracking-uri", default=None, help=f"default: $MLFLOW_TRACKING_URI, else {DEFAULT_URI}"
    )
    parser.add_argument("--out", default=None, help="output folder (default: <run>/explain)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace files of the same names in another --out folder (and nothing else)",
    )
    parser.add_argument(
        "--groups",
        default=None,
        help="parity colours: metal, family or column:<name> (default: the run's cv.groups when "
        "it was grouped, else metal)",
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="clusters explained (final model; at least 1)"
    )
    parser.add_argument(
        "--log", action="store_true", help="also log the files to the MLflow run (under explain/)"
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load the pickled models of an older run (a pickle runs code when loaded: only for "
        "files you trust)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("n2react.data").setLevel(logging.ERROR)

    from n2react.errors import N2ReactError
    from n2react.explain import Budget, explain_run
    from n2react.tracking import RUN_ID

    # refused before the work, not after it
    if args.log and not RUN_ID.match(args.run):
        sys.stderr.write(f"n2react: error: --log needs an MLflow run id, got {args.run}\n")
        return 2
    if args.log and (why := _deleted(args.run, args.tracking_uri)):
        sys.stderr.write(f"n2react: error: {why}\n")
        return 2
    if args.rows is not None and args.rows < 1:  # 0 rows: nothing to explain (a numpy traceback)
        sys.stderr.write(f"n2react: error: --rows={args.rows}: need at least 1 cluster\n")
        return 2
    budget = Budget() if args.rows is None else Budget(max_rows=args.rows)
    try:
        paths = explain_run(
            args.run,
            groups=args.groups,
            budget=budget,
            out_dir=args.out,
            tracking_uri=args.tracking_uri,
            trust_pickle=args.trust_pickle,
            force=args.force,
        )
        if args.log:
            _log_to_run(args.run, args.tracking_uri, paths)
    except N2ReactError as exc:
        sys.stderr.write(f"n2react: error: {exc}\n")
        return 2
    for p in paths:
        sys.stdout.write(f"{p}\n")
    return 0


def _deleted(run: str, uri: str | None) -> str | None:
    """Why ``--log`` is refused for the MLflow run ``run``: it was deleted (an artifact store takes
    a deleted run's files without a word). None otherwise: a store or run that cannot be read is
    said by the explaining itself."""
    from n2react.credentials import redact
    from n2react.mlflow_runs import RunReader
    from n2react.store_uri import unreadable
    from n2react.tracking import default_uri

    uri = uri or default_uri()
    if unreadable(uri):
        return None
    try:
        deleted = RunReader(uri).run(run).deleted
    except Exception:
        return None
    if not deleted:
        return None
    return (
        f"--log: MLflow run {run} was deleted in {redact(uri)}; nothing is logged to a deleted "
        "run (restore it in the MLflow UI first, or leave out --log to draw the figures only)"
    )


def _log_to_run(run: str, uri: str | None, paths: list) -> None:
    from n2react.mlflow_runs import RunReader
    from n2react.tracking import default_uri

    reader = RunReader(uri or default_uri())
    for p in paths:
        reader.log_artifact(run, p, "explain")


if __name__ == "__main__":  # stdout closed early (`| head`): exit 141, no traceback
    from n2react.quiet import closed_stdout_ends_quietly

    sys.exit(closed_stdout_ends_quietly(main))
