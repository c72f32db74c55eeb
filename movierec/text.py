"""Plain-text tables for the terminal: the one formatter every command's table goes through."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = (), rule: bool = True
) -> str:
    """Columns padded to their widest cell, two spaces apart; the columns whose indexes are in
    `right` are right-aligned (numbers); None prints as empty; `rule` underlines the header
    (a column without a heading, such as a marker column, is not underlined)."""
    cells = [[("" if value is None else str(value)) for value in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()

    lines = [line(cells[0])]
    if rule:
        lines.append("  ".join(("-" if head else " ") * width for head, width in zip(cells[0], widths)).rstrip())
    return "\n".join(lines + [line(row) for row in cells[1:]])
