"""`movierec`: the command line.  Each subcommand is a thin wrapper over library code."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module, one-line help); each module has add_arguments(parser) and run_cli(args),
# or, when it serves several commands, add_<name>_arguments(parser) and run_<name>(args)
COMMANDS = {
    "download": ("movierec.data.download", "fetch ml-latest-small from GroupLens, verify and unpack it"),
    "synth": ("movierec.data.synth", "write a MovieLens-shaped synthetic data set"),
    "pipeline": ("movierec.stages.pipeline", "run every stage in order in one Spark session"),
    "evaluate": ("movierec.stages.evaluate", "hold out each user's latest ratings and print the metrics table"),
    "tune": ("movierec.evaluation.tuning", "choose ALS and forest hyper-parameters on a validation split of the training part"),
    "report": ("movierec.report.build", "write the HTML evaluation report under var/reports/"),
    "rollback": ("movierec.store.runs", "point the store back at the previous published run"),
    "runs": ("movierec.store.runs", "list the runs in the store"),
    "serve": ("serving.cli", "serve the API under gunicorn"),
    "config": ("movierec.config_cli", "print the effective settings (or the README table)"),
}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    # import only the chosen command's module, so `movierec synth` never loads Spark
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        module, help_text = COMMANDS[name]
        mod = importlib.import_module(module)
        parser = argparse.ArgumentParser(prog=f"movierec {name}", description=help_text)
        # a module serving several commands names its pair add_<name>_arguments / run_<name>
        if hasattr(mod, f"add_{name}_arguments"):
            add, handler = getattr(mod, f"add_{name}_arguments"), getattr(mod, f"run_{name}")
        else:
            add, handler = mod.add_arguments, mod.run_cli
        add(parser)
        args = parser.parse_args(argv[1:])
    else:
        parser = argparse.ArgumentParser(prog="movierec", description=__doc__)
        parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
        parser.parse_args(argv[:1])
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
