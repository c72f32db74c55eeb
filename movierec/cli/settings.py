"""`movierec config`: the settings every part reads, as this environment and these flags make them."""

from __future__ import annotations

import json
import os

import click

from movierec import config
from movierec.text import format_table


@click.command(
    name="config",
    short_help="print the effective settings (or the README table)",
    help="Print the effective settings (flag over MOVIEREC_* variable over default), "
    "URLs without their passwords; or the README's table of them.",
)
@click.option("--markdown", is_flag=True, help="print the README's configuration table instead")
@click.option("--json", "as_json", is_flag=True, help="print the settings as JSON")
@config.setting_options(*config.ALL_SETTINGS)
def config_command(markdown: bool, as_json: bool, settings: config.Settings) -> int:
    if markdown:
        click.echo(config.markdown_table())
        return 0
    values = config.shown(settings)
    if as_json:
        click.echo(json.dumps(values, indent=2, sort_keys=True))
        return 0
    context = click.get_current_context()
    rows = []
    for name, value in values.items():
        if context.get_parameter_source(config.OPTION_PREFIX + name) == click.core.ParameterSource.COMMANDLINE:
            source = "flag"
        elif config.env_name(name) in os.environ:
            source = "environment"
        else:
            source = "default"
        shown = str(value).lower() if isinstance(value, bool) else value
        rows.append((name, shown, config.kind(name), source, config.env_name(name)))
    click.echo(format_table(("setting", "value", "kind", "from", "variable"), rows))
    return 0
