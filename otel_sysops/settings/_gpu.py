"""Settings of the NVIDIA GPU collector and its rules (`[gpu]`, `SYSOPS_GPU__*`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ._base import Section


class GpuSettings(Section):
    """Options of the gpu section."""

    enabled: bool = True
    # The NVML binding to import: `pynvml` (the `nvidia-ml-py` package, extra `gpu`), or any
    # module with the same functions (tests inject `tests.fakes.fake_nvml`).
    nvml_module: str = Field(
        "pynvml", min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
    )
    # Processes reported per GPU by `sysops.gpu.process.memory.usage` (the largest users); 0: none.
    top_processes: int = Field(10, ge=0, le=1000)
    # Count Xid errors through NVML events (polled without waiting, once per tick).
    xid_events: bool = True
    # NVLink indices probed once per GPU to find its active links (NVML_NVLINK_MAX_LINKS is 36 in
    # current bindings); probing stops at the first index the GPU rejects.
    nvlink_max_links: int = Field(36, ge=0, le=64)

    # -- default rules (analyzers.gpu_rules) --------------------------------------------------
    # Off by default: the threshold analyzer's defaults cover `hw.temperature{hw.type="gpu"}` and
    # `hw.gpu.memory.utilization` at the same levels, with hysteresis and a `for` duration; both on
    # would alert twice. Turn this on only with the threshold analyzer disabled.
    rules_temperature_memory: bool = False
    temperature_warning: float = Field(85.0, description="°C")
    temperature_critical: float = Field(95.0, description="°C")
    memory_warning: float = Field(0.90, gt=0, le=1, description="fraction of GPU memory used")
    memory_critical: float = Field(0.98, gt=0, le=1, description="fraction of GPU memory used")
    # Ticks in a row a thermal or power clock-event reason must be active before it warns
    # (running at the power cap under full load is normal for a moment, not for minutes).
    throttle_ticks: int = Field(3, ge=1, le=10_000)

    @model_validator(mode="after")
    def _ordered(self) -> GpuSettings:
        if self.temperature_warning > self.temperature_critical:
            raise ValueError("temperature_warning must not exceed temperature_critical")
        if self.memory_warning > self.memory_critical:
            raise ValueError("memory_warning must not exceed memory_critical")
        return self
