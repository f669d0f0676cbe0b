"""The price strip: each traded or held symbol's last price, change and sparkline."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from decimal import Decimal

from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from kobe_tui.widgets.formatting import px, signed, spark_points


class PriceStrip(Horizontal):
    """Each traded symbol: the last price, the change since the session began, a sparkline."""

    KEEP = 120

    def __init__(self) -> None:
        super().__init__(id="prices")
        self.first: dict[str, Decimal] = {}
        self.history: dict[str, deque[float]] = {}
        self.widths: dict[str, int] = {}
        self.shown: set[str] = set()
        self.slugs: dict[str, str] = {}  # symbol -> the name of its widgets
        self.priced_at: dict[str, datetime] = {}  # when each symbol's last price came

    def _slug(self, symbol: str) -> str:
        """A name for the symbol's widgets, its own: symbols from a feed may differ only in
        punctuation (A.B/USDC, A-B/USDC) or not be ASCII; the same name twice crashed."""
        if symbol not in self.slugs:
            base = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in symbol.lower())
            taken, slug, n = set(self.slugs.values()), base, 0
            while slug in taken:
                n += 1
                slug = f"{base}-{n}"
            self.slugs[symbol] = slug
        return self.slugs[symbol]

    def show(
        self, prices: dict[str, Decimal | None], now: datetime, *, record: bool = True
    ) -> None:
        """``record``: new prices (a point on each sparkline) as of ``now``; else only the
        symbols shown. A price None: none is current (a venue down, a ticker that failed); a
        symbol shown before stays, dimmed, with ``—`` and the time of its last price
        (``BTC — since 14:05``), never its last one as if it were current. Held or not, the
        same."""
        prices = {s: p for s, p in prices.items() if p is not None or s in self.first}
        for symbol, price in prices.items():
            slug = self._slug(symbol)
            if price is None:
                since = self.priced_at.get(symbol)
                stale = f"— since {since:%H:%M}" if since is not None else "—"
                self._label(symbol, Text(f" {symbol.split('/')[0]} {stale} ", style="dim"))
                continue
            if symbol not in self.first:
                self.first[symbol] = price
                self.history[symbol] = deque(maxlen=self.KEEP)
                self.mount(
                    Static("", id=f"px-{slug}", classes="px-label"),
                    Sparkline([], id=f"spark-{slug}", classes="px-spark"),
                )
            elif not record:
                continue
            self.priced_at[symbol] = now
            self.history[symbol].append(float(price))  # drawing only; the label is Decimal
            first = self.first[symbol]
            change = (price - first) / first * 100 if first else Decimal(0)
            label = Text(f" {symbol.split('/')[0]} {px(price, fixed=True)} ")
            label.append_text(signed(change, "%"))
            self._label(symbol, label)
            self.query_one(f"#spark-{slug}", Sparkline).data = spark_points(self.history[symbol])
        if set(prices) != self.shown:  # a symbol no longer traded or held leaves the strip
            self.shown = set(prices)
            for symbol in self.first:
                slug = self._slug(symbol)
                for widget in self.query(f"#px-{slug}, #spark-{slug}"):  # a class: the CSS
                    widget.set_class(symbol not in self.shown, "-gone")  # hides sparks at 80
        self._fit()

    def _label(self, symbol: str, label: Text) -> None:
        widget = self.query_one(f"#px-{self._slug(symbol)}", Static)
        widths = self.widths.get(symbol)
        self.widths[symbol] = label.cell_len
        widget.update(label, layout=widths != label.cell_len)  # a layout only if it changed

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """Whole symbols, in order, while they fit; those after are left out (a price is never
        cut at the edge of the line)."""
        room = self.size.width
        if not room:
            return  # not laid out yet
        used, full = 0, False
        for symbol in self.first:
            slug = self._slug(symbol)
            spark = self.query_one(f"#spark-{slug}", Sparkline)
            need = self.widths.get(symbol, 0)
            if not self.screen.has_class("-narrow"):  # sparklines from 120 columns
                need += int(spark.styles.width.value if spark.styles.width else 0)
                need += spark.styles.margin.right
            if symbol in self.shown:
                full = full or used + need > room
                used += 0 if full else need
            for widget in (self.query_one(f"#px-{slug}"), spark):
                widget.set_class(full, "-over")
