"""One command for everything but the Hydra trainer: `n2react predict|explain|compare ...`.

Each subcommand is the existing entry point, with its own options (`n2react predict --help`):

- ``n2react predict MODEL SPREADSHEET``  = ``python -m predict`` (also ``n2react-predict``)
- ``n2react explain RUN``                = ``python -m n2react.explain``
- ``n2react compare RUN_A RUN_B``        = ``python -m n2react.compare``

Training stays ``python -m train`` (or ``n2react-train``): Hydra owns its command line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from n2react.arguments import Parser
from n2react.arguments import at_least as at_least  # their home before n2react.arguments
from n2react.arguments import comma_list as comma_list
from n2react.arguments import positive as positive


def _predict(argv: list[str]) -> int:
    import predict

    return predict.main(argv, prog="n2react predict")


def _explain(argv: list[str]) -> int:
    from n2react.explain.__main__ import main

    return main(argv, prog="n2react explain")


def _compare(argv: list[str]) -> int:
    from n2react.compare import main

    return main(argv, prog="n2react compare")


#: subcommand -> (its entry point, one line of help)
COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "predict": (_predict, "lg(k1) of new clusters from a trained model (python -m predict)"),
    "explain": (_explain, "every explanation figure of a finished run, without training"),
    "compare": (_compare, "two runs on the same folds, paired bootstrap intervals"),
}


def main(argv: list[str] | None = None) -> int:
    """``n2react COMMAND ...``; stdout closed early (``--help | head``) ends it quietly."""
    from n2react.quiet import closed_stdout_ends_quietly

    return closed_stdout_ends_quietly(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = Parser(
        prog="n2react",
        description=__doc__.split("\n")[0],
        epilog="training: python -m train [overrides] (or n2react-train); "
        "`n2react COMMAND --help` lists a command's options",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_) in COMMANDS.items():
        # the command's own parser reads the rest (its --help included)
        sub.add_parser(name, help=help_, add_help=False, prefix_chars="\0")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return COMMANDS[args.command][0](rest)


if __name__ == "__main__":
    sys.exit(main())
