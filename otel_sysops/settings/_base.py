"""The base every settings section derives from: frozen, and unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A nested settings section (`[section]` in TOML, `SYSOPS_SECTION__KEY` in the environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
