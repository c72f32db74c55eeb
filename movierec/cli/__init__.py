"""`movierec`: the command line, one small click command per task over library code.

Each command offers the flags of the settings it reads (movierec.config generates them from
`Settings`; every one is also a MOVIEREC_* variable) and imports what is heavy (pyspark,
Flask) only when it runs, so `movierec --help`, `synth` or `runs` never load Spark.

A mistake in what was asked (a bad flag or value, an unknown stage, a store or data
directory that is not there, a URL no driver can open) is one line on stderr and exit code 2;
a command that ran and could not do it (the store refused, the quality gate said no) exit 1.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from movierec import __version__, config
from movierec.cli import batch, data, serve, settings, store
from movierec.cli.common import Failed, UserError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
HELP = (
    "movierec: a hybrid movie recommender (Spark ALS 70% + a content random forest 30%).\n\n"
    "`movierec COMMAND --help` lists a command's options; each setting among them is also a MOVIEREC_* "
    "variable (the flag wins), and `movierec config` shows them all."
)


class _Commands(click.Group):
    """Commands listed in the order they were added (the order work flows in), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Commands, context_settings=CONTEXT, invoke_without_command=True, help=HELP)
@click.version_option(__version__, "--version", prog_name="movierec", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> int:
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
    return 0


for _command in (
    data.download,
    data.synth,
    batch.pipeline,
    batch.evaluate,
    batch.tune,
    batch.report,
    store.runs,
    store.rollback,
    store.schema,
    serve.serve,
    settings.config_command,
):
    cli.add_command(_command)


def _command_path(argv: Sequence[str]) -> str:
    name = next((arg for arg in argv if not arg.startswith("-")), None)
    return f"movierec {name}" if name in cli.commands else "movierec"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (tests call this with a list of arguments)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    where = _command_path(argv)
    try:
        result = cli.main(args=argv, prog_name="movierec", standalone_mode=False)
    except click.UsageError as err:
        path = err.ctx.command_path if err.ctx is not None else where
        print(f"{path}: {err.format_message()} (`{path} --help` lists the options)", file=sys.stderr)
        return 2
    except (UserError, Failed, click.ClickException) as err:
        print(f"{where}: {err.format_message()}", file=sys.stderr)
        return err.exit_code
    except config.ConfigError as err:
        print(f"{where}: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, click.Abort):
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
