"""The read-only Solana indexer: a JSON-RPC client and the slot scanner (nothing is ever sent)."""

from engine.indexer.indexer import Indexer, IndexerState, ScanResult, normalize_block
from engine.indexer.rpc import RpcError, SolanaRpc

__all__ = ["Indexer", "IndexerState", "RpcError", "ScanResult", "SolanaRpc", "normalize_block"]
