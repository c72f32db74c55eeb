"""`movierec config`: the effective settings, or (--markdown) the README's table of them."""
from __future__ import annotations

import argparse
import json

from movierec import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="print the documentation table instead")
    config.add_flags(parser)


def run_cli(args: argparse.Namespace) -> int:
    if args.markdown:
        print(config.markdown_table())
    else:
        print(json.dumps(config.from_args(args).to_dict(), indent=2, sort_keys=True))
    return 0
