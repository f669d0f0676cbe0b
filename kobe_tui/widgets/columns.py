"""Column fitting: which columns a pane's table shows at its width, and how wide each is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Col:
    """A table column. ``text`` columns (free text) truncate with an ellipsis; the others (prices,
    quantities, money, ids, times) always show whole. When the pane is too narrow, the columns
    with the lowest ``keep`` go first (``keep`` 9: never dropped). An ``optional`` column is left
    out until a row has something to show in it. A column ``under`` another (its key) goes on a
    second line of that column's cells when the never-dropped columns do not fit on one line."""

    key: str
    label: str
    keep: int = 9
    text: bool = False
    least: int = 8  # a free-text column narrower than this is left out instead
    optional: bool = False
    under: str = ""


def fit_columns(cols: tuple[Col, ...], content: list[int], avail: int) -> list[int | None]:
    """Each column's width for ``avail`` cells (None: dropped). Whole columns first, by priority;
    free text shares what is left, never wider than its content. Cells have one space each side."""
    shown = [i for i in range(len(cols)) if content[i]]  # 0: an optional column, still empty

    def need(i: int) -> int:
        return (min(content[i], cols[i].least) if cols[i].text else content[i]) + 2

    while len(shown) > 1 and sum(need(i) for i in shown) > avail:
        droppable = [i for i in shown if cols[i].keep < 9]
        if not droppable:
            break
        shown.remove(min(droppable, key=lambda i: (cols[i].keep, -i)))
    widths: list[int | None] = [None] * len(cols)
    texts = [i for i in shown if cols[i].text]
    left = avail - sum(content[i] + 2 for i in shown if not cols[i].text) - 2 * len(texts)
    for n, i in enumerate(texts):
        share = left // (len(texts) - n)
        widths[i] = max(min(content[i], share), min(content[i], cols[i].least))
        left -= widths[i] or 0
    for i in shown:
        if not cols[i].text:
            widths[i] = content[i]
    return widths


def fit_rows(
    cols: tuple[Col, ...], content: list[int], avail: int
) -> tuple[list[int | None], bool]:
    """The widths (``fit_columns``) and whether rows take two lines: on one line while the
    never-dropped columns fit, else each ``under`` column goes below its column, as wide as
    the wider of the two. Free text below widens its column as it would take on one line
    (up to its ``least``) where the kept columns still fit so, else it is cut to the column."""
    widths = fit_columns(cols, content, avail)
    keys = [c.key for c in cols]
    if not any(c.under for c in cols) or _width(widths) <= avail:
        return widths, False
    for text_room in (True, False):
        merged = list(content)
        for i, col in enumerate(cols):
            if col.under:
                host = keys.index(col.under)
                below = content[i] if not col.text else min(content[i], col.least) * text_room
                merged[host] = max(merged[host], below)
                merged[i] = 0  # shown in its host column
        widths = fit_columns(cols, merged, avail)
        if _width(widths) <= avail:
            break
    return widths, True


def _width(widths: list[int | None]) -> int:
    return sum(w + 2 for w in widths if w is not None)
