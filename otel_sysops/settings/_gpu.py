"""Settings of the NVIDIA GPU collector (`[gpu]`, `SYSOPS_GPU__*`)."""

from __future__ import annotations

from ._base import Section


class GpuSettings(Section):
    """Options of the gpu section."""

    enabled: bool = True
