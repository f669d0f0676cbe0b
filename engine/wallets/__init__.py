"""Sub-wallets: the LIVE_150 profile, the flows engine, the runtime manager and its snapshot.

Sub-wallets are bookkeeping: flows move numbers between wallets in Kobe's own ledger. No exchange
transfer, withdrawal or chain transaction is ever sent by a flow.

Modules (imported directly; this package imports nothing so that ``engine.config`` can read the
profile's constants from :mod:`engine.wallets.policies` without a cycle):

- :mod:`engine.wallets.policies`: the LIVE_150 profile as named constants and a profile object.
- :mod:`engine.wallets.flows`: the ledger and the rules (pure, no I/O).
- :mod:`engine.wallets.flowlog`: ``wallet_flows.jsonl`` lines, written and read back from the end.
- :mod:`engine.wallets.snapshot`: what a cockpit pane reads (:class:`WalletsSnapshot`) and the
  finance alerts.
- :mod:`engine.wallets.runtime`: :class:`~engine.wallets.runtime.WalletManager` (journal, snapshot
  file, restart) and :func:`~engine.wallets.runtime.load_view` (read-only, for ``kobe wallets``).
"""
