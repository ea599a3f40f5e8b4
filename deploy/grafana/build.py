"""Build the Grafana dashboards under deploy/grafana/dashboards/ (run: python deploy/grafana/build.py).

Every query selects with `job` and `instance` (the dashboard variables) and uses the names the
agent serves on /metrics, which are the names of the Go OpenTelemetry -> Prometheus translator
that Prometheus' OTLP receiver and the Collector's prometheusremotewrite exporter use (words joined
with `_`, unit suffix `_bytes`/`_seconds`, counters `_total`, gauges of unit `1` `_ratio`, no
suffix for `{annotation}` units), so the dashboards work whichever path the data took.
tests/deploy/test_grafana.py runs every query against a real
Prometheus scraping a real agent.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
# Every series selector carries these, so a dashboard shows the chosen agents only.
SEL = 'job=~"$job",instance=~"$instance"'
S = "{" + SEL + "}"
RATE = "$__rate_interval"


def rate(metric: str) -> str:
    """Return the per-second rate of a counter of the chosen agents."""
    return f"rate({metric}{S}[{RATE}])"


def by(labels: str, inner: str, agg: str = "sum") -> str:
    """Return `inner` aggregated per agent and `labels`."""
    return f"{agg} by (instance, {labels}) ({inner})"


@dataclass
class Panel:
    """One panel: a title, its queries (expr, legend) and how to show them."""

    title: str
    queries: list[tuple[str, str]]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for index, (expr, legend) in enumerate(panel.queries):
        target: dict[str, Any] = {
            "datasource": DS,
            "expr": expr,
            "legendFormat": legend,
            "refId": chr(65 + index),
        }
        if panel.kind in ("table", "bargauge"):
            target |= {"instant": True, "format": "table" if panel.kind == "table" else "time_series"}
        targets.append(target)
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DS,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, **panel.defaults}, "overrides": []},
        "options": panel.options,
        "targets": targets,
    }
    if panel.transformations:
        out["transformations"] = panel.transformations
    return out


def _variables() -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        {
            "name": "job",
            "label": "Job",
            "type": "query",
            "datasource": DS,
            "query": {"query": 'label_values(target_info{service_name="otel-sysops"}, job)', "refId": "job"},
            "definition": 'label_values(target_info{service_name="otel-sysops"}, job)',
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".+",
            "current": {},
            "sort": 1,
        },
        {
            "name": "instance",
            "label": "Instance",
            "type": "query",
            "datasource": DS,
            "query": {"query": 'label_values(target_info{job=~"$job"}, instance)', "refId": "instance"},
            "definition": 'label_values(target_info{job=~"$job"}, instance)',
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".+",
            "current": {},
            "sort": 1,
        },
    ]


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    """Return a Grafana dashboard (schema 39) laying `panels` out left to right, top to bottom."""
    laid: list[dict[str, Any]] = []
    x = y = row_height = 0
    for pid, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid.append(_panel_json(panel, pid, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": f"otel-sysops / {title}",
        "description": description,
        "tags": ["otel-sysops", "opentelemetry", "host"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["otel-sysops"], "title": "otel-sysops", "asDropdown": True}
        ],
        "panels": laid,
    }


def _stat(title: str, expr: str, unit: str, description: str = "", legend: str = "{{instance}}") -> Panel:
    return Panel(
        title,
        [(expr, legend)],
        unit,
        kind="stat",
        description=description,
        width=6,
        height=4,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
        },
    )


def host_overview() -> dict[str, Any]:
    percent = {"min": 0, "max": 1}
    panels = [
        _stat(
            "CPU busy",
            f'1 - avg by (instance) (system_cpu_utilization_ratio{{{SEL},cpu_mode="idle"}})',
            "percentunit",
            "Share of all logical CPUs not idle over the last tick.",
        ),
        _stat(
            "Memory used",
            f'sum by (instance) (system_memory_utilization_ratio{{{SEL},system_memory_state="used"}})',
            "percentunit",
        ),
        _stat("Logical CPUs", f"system_cpu_logical_count{S}", "short"),
        _stat("Memory total", f"system_memory_limit_bytes{S}", "bytes"),
        Panel(
            "CPU utilization by mode",
            [
                (
                    f'avg by (instance, cpu_mode) (system_cpu_utilization_ratio{{{SEL},cpu_mode!="idle"}})',
                    "{{cpu_mode}}",
                )
            ],
            "percentunit",
            description="Average over logical CPUs; idle left out.",
            options={"tooltip": {"mode": "multi"}},
            defaults={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}, **percent},
        ),
        Panel(
            "CPU busy per logical CPU",
            [(f"sysops_cpu_busy_ratio{S}", "{{cpu_logical_number}}")],
            "percentunit",
            description="sysops.cpu.busy: share of each logical CPU not idle (or iowait).",
            defaults=percent,
        ),
        Panel(
            "Load average",
            [
                (f"system_cpu_load_average_1m{S}", "1m"),
                (f"system_cpu_load_average_5m{S}", "5m"),
                (f"system_cpu_load_average_15m{S}", "15m"),
            ],
            "short",
        ),
        Panel(
            "Memory by state",
            [
                (
                    by("system_memory_state", f"system_memory_usage_bytes{S}", "sum"),
                    "{{system_memory_state}}",
                )
            ],
            "bytes",
            defaults={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}},
        ),
        Panel(
            "Memory available",
            [(f"system_memory_linux_available_bytes{S}", "{{instance}}")],
            "bytes",
            description="MemAvailable: memory usable for new work without swapping.",
        ),
        Panel(
            "Swap used",
            # Bytes, not utilization: a host without swap has no utilization but does report 0 used.
            # Per swap area: summed per host.
            [
                (
                    f'sum by (instance) (system_paging_usage_bytes{{{SEL},system_paging_state="used"}})',
                    "{{instance}}",
                )
            ],
            "bytes",
        ),
        Panel(
            "Root filesystem used",
            [
                (
                    f'system_filesystem_utilization_ratio{{{SEL},system_filesystem_mountpoint="/"}}',
                    "{{system_device}}",
                )
            ],
            "percentunit",
            defaults=percent,
        ),
        Panel(
            "Network throughput",
            [
                (
                    by("network_io_direction", rate("system_network_io_bytes_total")),
                    "{{network_io_direction}}",
                )
            ],
            "Bps",
        ),
    ]
    return dashboard(
        "otel-sysops-host",
        "Host overview",
        "CPU, memory, load, swap and the root filesystem of the hosts otel-sysops monitors.",
        panels,
    )


def disks() -> dict[str, Any]:
    panels = [
        Panel(
            "Disk throughput",
            [
                (
                    by("system_device, disk_io_direction", rate("system_disk_io_bytes_total")),
                    "{{system_device}} {{disk_io_direction}}",
                )
            ],
            "Bps",
        ),
        Panel(
            "Disk operations",
            [
                (
                    by("system_device, disk_io_direction", rate("system_disk_operations_total")),
                    "{{system_device}} {{disk_io_direction}}",
                )
            ],
            "iops",
        ),
        Panel(
            "Average operation time",
            [
                (
                    f"sysops_disk_operation_time_average_seconds{S}",
                    "{{system_device}} {{disk_io_direction}}",
                )
            ],
            "s",
            description="sysops.disk.operation_time.average: time per operation over the last tick.",
        ),
        Panel(
            "Filesystem used",
            [
                (
                    by("system_filesystem_mountpoint", f"system_filesystem_utilization_ratio{S}", "max"),
                    "{{system_filesystem_mountpoint}}",
                )
            ],
            "percentunit",
            defaults={"min": 0, "max": 1},
        ),
        Panel(
            "Filesystem space by state",
            [
                (
                    by(
                        "system_filesystem_mountpoint, system_filesystem_state",
                        f"system_filesystem_usage_bytes{S}",
                        "sum",
                    ),
                    "{{system_filesystem_mountpoint}} {{system_filesystem_state}}",
                )
            ],
            "bytes",
        ),
        Panel(
            "Inodes used",
            [(f"sysops_filesystem_inodes_utilization_ratio{S}", "{{system_filesystem_mountpoint}}")],
            "percentunit",
            defaults={"min": 0, "max": 1},
        ),
        Panel(
            "Time to exhaustion (forecast)",
            [
                (
                    f"sort(sysops_forecast_time_to_exhaustion_seconds{S})",
                    "{{sysops_metric}} {{system_filesystem_mountpoint}}{{system_device}}",
                )
            ],
            "s",
            kind="bargauge",
            width=24,
            description=(
                "sysops.forecast.time_to_exhaustion: the trend forecaster's estimate of when a "
                "filesystem (or other capacity) fills up. Shortest first."
            ),
            options={
                "orientation": "horizontal",
                "displayMode": "gradient",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
            defaults={
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        {"color": "red", "value": None},
                        {"color": "orange", "value": 86400},
                        {"color": "green", "value": 604800},
                    ],
                }
            },
        ),
    ]
    return dashboard(
        "otel-sysops-disks",
        "Disks and filesystems",
        "Disk I/O, filesystem and inode usage, and exhaustion forecasts.",
        panels,
    )


def network() -> dict[str, Any]:
    panels = [
        Panel(
            "Throughput by interface",
            [
                (
                    by("network_interface_name, network_io_direction", rate("system_network_io_bytes_total")),
                    "{{network_interface_name}} {{network_io_direction}}",
                )
            ],
            "Bps",
            width=24,
        ),
        Panel(
            "Errors",
            [
                (
                    by("network_interface_name, network_io_direction", rate("system_network_errors_total")),
                    "{{network_interface_name}} {{network_io_direction}}",
                )
            ],
            "short",
            description="Errors per second (receive and transmit).",
        ),
        Panel(
            "Connections",
            [
                (
                    by(
                        "network_transport, network_connection_state",
                        f"system_network_connection_count{S}",
                        "sum",
                    ),
                    "{{network_transport}} {{network_connection_state}}",
                )
            ],
            "short",
        ),
    ]
    return dashboard(
        "otel-sysops-network", "Network", "Interface throughput, errors and connections.", panels
    )


def processes() -> dict[str, Any]:
    table_opts = {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]}
    panels = [
        Panel(
            "Top processes by CPU",
            [
                (
                    "topk(10, "
                    + by("process_pid, process_executable_name", "process_cpu_utilization_ratio" + S)
                    + ")",
                    "{{process_executable_name}} ({{process_pid}})",
                )
            ],
            "percentunit",
        ),
        Panel(
            "Top processes by memory",
            [
                (
                    "topk(10, "
                    + by("process_pid, process_executable_name", "process_memory_usage_bytes" + S)
                    + ")",
                    "{{process_executable_name}} ({{process_pid}})",
                )
            ],
            "bytes",
        ),
        Panel(
            "Processes now (CPU, memory)",
            [
                (
                    "topk(25, "
                    + by("process_pid, process_executable_name", "process_cpu_utilization_ratio" + S)
                    + ")",
                    "",
                ),
                (
                    "topk(25, "
                    + by("process_pid, process_executable_name", "process_memory_usage_bytes" + S)
                    + ")",
                    "",
                ),
            ],
            "short",
            kind="table",
            width=24,
            height=10,
            options=table_opts,
            # One row per process: join the CPU and memory instant queries on their labels.
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"renameByName": {"Value #A": "CPU", "Value #B": "memory"}}},
            ],
            defaults={"custom": {"align": "auto"}},
        ),
    ]
    return dashboard("otel-sysops-processes", "Processes", "The busiest processes by CPU and memory.", panels)


def anomalies() -> dict[str, Any]:
    panels = [
        Panel(
            "Anomaly score",
            [(f"sysops_anomaly_score_ratio{S}", "{{sysops_metric}}")],
            "short",
            width=24,
            description=(
                "sysops.anomaly.score from the in-process detectors: how far each series is from its "
                "own recent behaviour (higher is stranger)."
            ),
        ),
        Panel(
            "Most anomalous series now",
            [(f"topk(10, sysops_anomaly_score_ratio{S})", "")],
            "short",
            kind="table",
            width=24,
            options={"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        ),
        Panel(
            "Highest score per host",
            [(f"max by (instance) (sysops_anomaly_score_ratio{S})", "{{instance}}")],
            "short",
        ),
        Panel(
            "Ring store series",
            [(f"otel_sysops_series_active{S}", "{{instance}}")],
            "short",
            description="Series the analyzers watch (otel_sysops.series.count); refused ones go unwatched.",
        ),
    ]
    return dashboard(
        "otel-sysops-anomalies", "Anomalies", "Scores of the in-process anomaly detectors.", panels
    )


def alerts() -> dict[str, Any]:
    panels = [
        Panel(
            "Active alerts",
            [
                (
                    by("otel_sysops_alerts_severity", f"otel_sysops_alerts_active{S}", "sum"),
                    "{{otel_sysops_alerts_severity}}",
                )
            ],
            "short",
            width=24,
            description="Alerts firing in each agent's alert manager (otel_sysops.alerts.active).",
        ),
        Panel(
            "Export failures",
            [
                (
                    by("otel_sysops_sink", rate("otel_sysops_export_failures_total")),
                    "{{otel_sysops_sink}}",
                )
            ],
            "short",
            description="Failed exports per sink per second: alerts and metrics that did not leave the host.",
        ),
        Panel(
            "Dropped collections",
            [
                (
                    by("otel_sysops_sink", f"increase(otel_sysops_export_dropped_total{S}[{RATE}])"),
                    "{{otel_sysops_sink}}",
                )
            ],
            "short",
        ),
        Panel(
            "Agent tick duration",
            [(f"otel_sysops_tick_duration_seconds{S}", "{{instance}}")],
            "s",
            description="A tick longer than the interval means late data and late alerts.",
        ),
        Panel(
            "Collector sample duration",
            [(f"otel_sysops_collector_duration_seconds{S}", "{{otel_sysops_collector}}")],
            "s",
        ),
        Panel(
            "Agent CPU",
            [
                (
                    f"sum by (instance) (rate(otel_sysops_cpu_time_seconds_total{S}[{RATE}]))",
                    "{{instance}}",
                )
            ],
            "percentunit",
        ),
        Panel(
            "Agent memory (RSS)",
            [(f"otel_sysops_memory_rss_bytes{S}", "{{instance}}")],
            "bytes",
        ),
    ]
    return dashboard(
        "otel-sysops-alerts",
        "Alerts and agent health",
        "Alerts firing in the agents, and whether the agents themselves keep up (self-telemetry).",
        panels,
    )


def gpus() -> dict[str, Any]:
    percent = {"min": 0, "max": 1}
    panels = [
        Panel(
            "GPU utilization",
            [(f"hw_gpu_utilization{S}", "{{hw_id}} {{hw_name}}")],
            "percentunit",
            defaults=percent,
        ),
        Panel(
            "GPU memory used",
            [(f"hw_gpu_memory_utilization{S}", "{{hw_id}} {{hw_name}}")],
            "percentunit",
            defaults=percent,
        ),
        Panel(
            "GPU temperature",
            # The GPU's sensor: hw.parent is the GPU's hw.id.
            [(f'hw_temperature_celsius{{{SEL},hw_sensor_location="gpu"}}', "{{hw_parent}} {{hw_name}}")],
            "celsius",
            width=24,
        ),
    ]
    return dashboard("otel-sysops-gpus", "GPUs", "NVIDIA GPUs seen through NVML.", panels)


DASHBOARDS = {
    "host-overview.json": host_overview,
    "disks-filesystems.json": disks,
    "network.json": network,
    "processes.json": processes,
    "anomalies.json": anomalies,
    "alerts.json": alerts,
    "gpus.json": gpus,
}


def render() -> dict[str, str]:
    """Return every dashboard's JSON text by file name."""
    return {name: json.dumps(build(), indent=2, sort_keys=False) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    """Write the dashboards (or with --check, exit 1 when a committed one differs)."""
    stale = []
    for name, text in render().items():
        path = OUT / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for name in stale:
        print(f"{OUT / name}: stale; run python deploy/grafana/build.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
