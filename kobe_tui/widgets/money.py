"""The money panes: wallets, equity, the risk engine's figures and the journal's statistics."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Sparkline, Static

from engine.untrusted import clean_text
from kobe_tui.widgets.columns import Col
from kobe_tui.widgets.formatting import counted, exact, num, signed, spark_points
from kobe_tui.widgets.header import ALARM, CAUTION
from kobe_tui.widgets.pane import Pane, TablePane

if TYPE_CHECKING:
    from engine.config import FinanceConfig, RiskConfig
    from engine.risk import RiskSnapshot
    from engine.stats import TradeStats
    from engine.trades import ClosedTrade
    from engine.wallets.snapshot import WalletsSnapshot


class AccountLine(Static):
    """One line, never two (a second one pushed the tenth wallet out of sight): the head, then
    whole items two spaces apart while they fit, then ``…``; never a figure cut. The whole
    line in the tooltip."""

    def __init__(self) -> None:
        super().__init__("", id="wallets-exchange")
        self.head = Text()
        self.items: list[str] = []

    def show(self, head: Text, items: list[str]) -> None:
        self.head, self.items = head, items
        self.tooltip = one_line(head, items, 0).plain
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        self.update(one_line(self.head, self.items, self.content_region.width), layout=False)


def one_line(head: Text, items: list[str], width: int) -> Text:
    """``head`` and as many whole ``items`` as ``width`` cells hold (all at width 0: not laid
    out yet), then ``…`` for the others; the head, free text, ends in … if even it is long."""
    line = head.copy()
    line.no_wrap, line.overflow = True, "ellipsis"
    for i, item in enumerate(items):
        more = "  …" if i < len(items) - 1 else ""
        if width and line.cell_len + cell_len(f"  {item}{more}") > width:
            line.append("  …")
            break
        line.append(f"  {item}")
    return line


class WalletsPane(TablePane):
    TITLE = "Wallets"
    EMPTY = "No wallet snapshot yet"
    COLUMNS = (
        Col("wallet", "wallet"),
        Col("chain", "chain", keep=2),
        Col("role", "role", keep=1, text=True),
        Col("balance", "balance"),
        Col("pct", "% eq", keep=3),
        Col("pnl", "pnl day"),
    )

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self._read: tuple[datetime, list[str]] | None = None  # the last read that succeeded
        self._trouble = ""  # why that read may no longer be current ("" when it is)
        self._venue = ""  # the venue's state as the engine's calls last found it

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield AccountLine()

    def on_mount(self) -> None:
        self.query_one(AccountLine).display = False

    def show_exchange(
        self, exchange: str, when: datetime, balances: dict[str, Decimal] | str
    ) -> None:
        """Testnet and live: the exchange account's own balances, beside Kobe's ledger (the
        table); a string says why they could not be read. Whose and when in the pane's bottom
        border, the figures on the one line under the table: at 120x40 the pane holds the ten
        wallets and one line more. A read that fails keeps the last one's figures, marked as
        of their time; a read that succeeds clears the mark."""
        line = self.query_one(AccountLine)
        if isinstance(balances, str):
            if self._read is None:  # nothing read yet: only why
                self.border_subtitle = f"{exchange} account {when:%H:%M}"
                why = Text(f"could not be read ({clean_text(balances, 120)})", style="red")
                line.show(why, [])
                line.display = True
                return
            self._trouble = self._trouble or "could not be read"
        else:
            # in the exchange's order (the quote first), what is held before the zeros, which
            # say least: the first to go when the line is too short for all
            held = sorted(balances.items(), key=lambda item: item[1] == 0)
            self._read = (when, [f"{a} {exact(v)}" for a, v in held])
            self._trouble = ""
            self.border_subtitle = f"{exchange} account {when:%H:%M}"
        self._draw_account()
        line.display = True

    def venue(self, state: str) -> bool:
        """The venue's state (the header's): while it is down or degraded the account's
        figures are marked as of their read. True when it has just come back: read again."""
        before, self._venue = self._venue, state
        if state == before:
            return False
        if state in ("down", "degraded"):
            self._trouble = f"exchange {state}"
            self._draw_account()
        return state == "ok" and before in ("down", "degraded")

    def _draw_account(self) -> None:
        if self._read is None:
            return
        when, pairs = self._read
        if self._trouble:  # said first, in words: a trader never reads these as current
            style = ALARM if self._trouble == "exchange down" else CAUTION
            head = Text.assemble((f"as of {when:%H:%M}, {self._trouble}", style), ":")
        else:
            head = Text("free:", style="bold")
        self.query_one(AccountLine).show(head, pairs or ["empty"])

    def show(self, snap: WalletsSnapshot) -> None:
        for w in snap.wallets:
            self.upsert(
                w.id,
                (
                    w.id,
                    w.chain,
                    w.role,
                    num(w.balance, 2),
                    num(w.pct_equity, 2),
                    signed(w.pnl_day),
                ),
            )


def app_clock(widget: Pane) -> datetime:
    """The cockpit's clock (injectable: a simulated one in tests)."""
    clock = getattr(widget.app, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


# The equity line's height stands for at least this share of equity: a drop of a few cents on a
# thousand draws as a few cents, not as a cliff from the top of the pane to the bottom.
SCALE_FLOOR = 0.01


def on_scale(points: Sequence[float]) -> Callable[[Sequence[float]], float]:
    """A summary for Textual's Sparkline that puts its bars on a sensible scale.

    The Sparkline stretches its data's own low..high over its height. The summary it calls for
    each bar may return any figure, which it then places between that low and high; this one
    returns the figure that lands the bar where the bar's highest point sits on a scale at least
    ``SCALE_FLOOR`` of equity tall, centred on the data."""
    low, high = min(points), max(points)
    span = max(high - low, abs(high) * SCALE_FLOOR)
    bottom = (low + high - span) / 2
    extent = high - low or 1  # the Sparkline's own divisor

    def summary(bar: Sequence[float]) -> float:
        share = (max(bar) - bottom) / span if span else 0.5
        return low + min(1.0, max(0.0, share)) * extent

    return summary


class EquityPane(Pane):
    TITLE = "Equity"
    EMPTY = "Equity appears once the engine has ticked"
    KEEP = 240

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.points: deque[Decimal] = deque(maxlen=self.KEEP)
        self.since: datetime | None = None  # the first point's time: the span it covers

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")
        yield Sparkline([], id="equity-line")
        yield Static("", id="equity-range")

    def on_mount(self) -> None:
        self.show_empty(True)

    def add_many(self, points: list[Decimal]) -> None:
        """Points from ticks drawn in one batch: kept, without drawing each one."""
        for equity in points:
            if not (self.points and self.points[-1] == equity and len(self.points) > 1):
                self.points.append(equity)

    def add(self, equity: Decimal) -> None:
        self.add_many([equity])
        data = spark_points(float(p) for p in self.points)  # drawing only
        line = self.query_one(Sparkline)
        line.summary_function = on_scale(data)
        line.data = data
        lo, hi = min(self.points), max(self.points)
        now = app_clock(self)
        self.since = self.since or now
        minutes = int((now - self.since).total_seconds() // 60)  # not the points: equal ones
        span = f"over {minutes} min"  # in a row are kept once
        self.query_one("#equity-range", Static).update(  # one line: no layout
            f"now {num(equity, 2)}  low {num(lo, 2)}  high {num(hi, 2)}  {span}", layout=False
        )
        self.show_empty(False)


class RiskPane(Pane):
    """The risk engine at a glance: each figure against its limit, the profile and the caps."""

    TITLE = "Risk"
    EMPTY = "Risk state appears once the engine runs"

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")
        # It scrolls (pane 8, then the arrows): at 120x40 the pane has six lines, the limits
        # first; the profile and the caps follow
        with VerticalScroll(id="risk-scroll"):
            yield Static("", id="risk-body")

    def on_mount(self) -> None:
        self.show_empty(True)
        self._shape: str | None = None  # the caps drawn last

    def focus_body(self) -> None:
        self.screen.set_focus(self.query_one("#risk-scroll", VerticalScroll))

    def show(self, snap: RiskSnapshot, risk: RiskConfig, finance: FinanceConfig) -> None:
        # Two columns: a line too long for the pane (a reason, the caps) wraps under its value,
        # not under the names
        body = Table.grid(padding=(0, 1))
        body.add_column(width=13, no_wrap=True)
        body.add_column()
        state = snap.state.value
        style = {"TRIPPED": "bold red", "WARNING": "bold yellow"}.get(state, "")
        # the reason on one line, cut with …: a long one (an operator's) wrapped over the pane
        # and pushed the figures out of sight; the alerts pane and `kobe risk status` say it all
        switch = Text.assemble((state, style), f"  {snap.reason}".rstrip())
        switch.no_wrap, switch.overflow = True, "ellipsis"
        rows: list[tuple[str, Text | str]] = [("kill switch", switch)]
        loss = -snap.pnl_day if snap.pnl_day < 0 else Decimal(0)
        cooldown = "none"
        if risk.cooldown_after_loss_s and snap.last_loss_at is not None:
            until = snap.last_loss_at + timedelta(seconds=risk.cooldown_after_loss_s)
            cooldown = f"to {until:%H:%M:%S}" if until > app_clock(self) else "over"
        # each figure against its limit first; the peak the drawdown is measured from follows
        # on its own line (beside the drawdown it wrapped in a 160-column grid's pane)
        limits = (
            (
                "drawdown",
                f"{num(snap.drawdown_pct, 2)}%",
                f"warn {num(risk.warning_drawdown_pct)}% max {num(risk.max_drawdown_pct)}%",
            ),
            ("losing streak", str(snap.losing_streak), f"max {risk.max_losing_streak}"),
            ("today's loss", num(loss, 2), f"max {num(risk.max_daily_loss_usd, 2)}"),
            ("cooldown", cooldown, f"{risk.cooldown_after_loss_s} s after loss"),
            ("peak equity", num(snap.peak_equity, 2), ""),
        )
        rows += [(name, f"{value:<11} {limit}".rstrip()) for name, value, limit in limits]
        caps = ", ".join(f"{w} {num(c.max_usd)}" for w, c in finance.risk_wallets.items())
        rows.append(("profile", f"{finance.profile_id}, capital {num(finance.capital_usd)}"))
        rows.append(("caps", caps))
        rows.append(("on trip", f"{risk.on_trip}, max risk/trade {risk.max_risk_per_trade_pct}%"))
        for name, value in rows:  # Text: shown literally, never as markup
            body.add_row(name, Text(value) if isinstance(value, str) else value)
        # a layout only when the lines may change (the caps, which may wrap)
        self.query_one("#risk-body", Static).update(body, layout=caps != self._shape)
        self._shape = caps
        self.show_empty(False)


class StatsPane(TablePane):
    """The whole journal's statistics (``kobe stats``), kept current with each closed trade."""

    TITLE = "Stats: s strategy, w wallet"  # the rows' marks (a column's label was cut)
    EMPTY = "No closed trades yet"
    COLUMNS = (
        Col("name", "", text=True, least=16),
        Col("trades", "trades"),
        Col("win", "win %", keep=4),
        Col("pnl", "PnL"),
        Col("fees", "fees", keep=3),
        Col("best", "best", keep=2),
        Col("worst", "worst", keep=2),
    )

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.stats: TradeStats | None = None

    def set_stats(self, stats: TradeStats) -> None:
        self.stats = stats
        self._draw()

    def add_many(self, trades: list[ClosedTrade]) -> None:
        if self.stats is None:
            return  # still reading the journal: these trades are in it
        for t in trades:
            self.stats.add(t)
        self._draw()

    def _draw(self) -> None:
        stats = self.stats
        if stats is None:
            return
        groups = [("all trades", stats.total)]  # s strategy, w wallet, then the last day
        groups += [(f"s {k}", b) for k, b in sorted(stats.by_strategy.items())]
        groups += [(f"w {k}", b) for k, b in sorted(stats.by_wallet.items())]
        today = max(stats.by_day, default=None)
        if today is not None:
            groups.append((str(today), stats.by_day[today]))
        for name, b in groups:
            self.upsert(
                name,
                (
                    name,
                    str(b.trades),
                    num(b.win_rate_pct, 1),
                    signed(b.pnl),
                    num(b.fees, 2),
                    num(b.best, 2),
                    num(b.worst, 2),
                ),
            )
        self.border_subtitle = counted(stats.total.trades, "trade")
