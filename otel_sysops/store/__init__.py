"""The ring store the analyzers read: raw points for a window, 1-minute rollups for a day."""

from ._ring import (
    ROLLUP_FIELDS,
    AttrKey,
    RingStore,
    RollupListener,
    Rollups,
    SeriesMatrix,
    attr_key,
    store_bytes,
)
from ._sqlite import RollupDatabase

__all__ = [
    "ROLLUP_FIELDS",
    "AttrKey",
    "RingStore",
    "RollupDatabase",
    "RollupListener",
    "Rollups",
    "SeriesMatrix",
    "attr_key",
    "store_bytes",
]
