"""The generated references match the code, and the generator reads what it claims to read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from opentelemetry.metrics import Meter
from pydantic import Field, SecretStr

from otel_sysops import _docs
from otel_sysops.churn import ChurningMeter
from otel_sysops.cli import main
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import INSTRUMENTATION_GROUP, Collector, CollectorContext
from otel_sysops.settings import Section, Settings
from otel_sysops.sinks import PrometheusSink

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return _docs.render_all()


@pytest.mark.parametrize("name", [_docs.CONFIGURATION_FILE, _docs.METRICS_FILE])
def test_committed_reference_is_up_to_date(rendered: dict[str, str], name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert _docs.comparable(name, committed) == _docs.comparable(name, rendered[name]), (
        f"docs/{name} is stale: run `{_docs.REGENERATE}` and commit the result"
    )


def test_every_setting_and_its_environment_variable_is_documented(rendered: dict[str, str]) -> None:
    text = rendered[_docs.CONFIGURATION_FILE]
    count = 0
    for _, _, leaves in _docs.iter_settings():
        for leaf in leaves:
            count += 1
            assert f"| `{leaf.key}` |" in text
            if leaf.env:
                assert f"`{leaf.env}`" in text
    assert count >= 15
    # A nested key maps to the variable the settings loader accepts.
    assert "| `store.sqlite_path` | `SYSOPS_STORE__SQLITE_PATH` | path (optional) | unset |" in text
    assert (
        "| `interval` | `SYSOPS_INTERVAL` | float | `10.0` | seconds between collections (≥ 0.05, ≤ 3600) |"
        in text
    )


def test_descriptions_come_from_the_field_or_the_comment_above_it() -> None:
    class Demo(Section):
        """A demo section."""

        # Told by a comment,
        # on two lines.
        commented: int = Field(3, ge=1)
        described: str = Field("x", description="told by the field")
        bare: bool = False

    leaves = {
        leaf.key: leaf for _, _, ls in _docs.iter_settings(Demo, "demo", "SYSOPS_DEMO__") for leaf in ls
    }
    assert leaves["demo.commented"].description == "Told by a comment, on two lines. (≥ 1)"
    assert leaves["demo.described"].description == "told by the field"
    assert leaves["demo.bare"].description == ""
    assert leaves["demo.bare"].env == "SYSOPS_DEMO__BARE"
    assert leaves["demo.bare"].default == "`false`"


def test_every_registered_instrument_is_in_the_metrics_reference(rendered: dict[str, str]) -> None:
    from otel_sysops.pipeline import Pipeline

    pipeline = Pipeline(_docs.default_settings())
    try:
        items = pipeline.catalog.items()
    finally:
        pipeline.close(1.0)
    text = rendered[_docs.METRICS_FILE]
    assert len(items) >= 10
    for info in items:
        assert f"| `{info.name}` | {info.kind} |" in text, info.name


def test_documented_prometheus_names_are_the_ones_served_on_metrics() -> None:
    # The reference computes names from the exporter's rules; the sink renders them for real.
    from otel_sysops.pipeline import Pipeline

    pipeline = Pipeline(_docs.default_settings())
    sink = PrometheusSink()
    pipeline.add_sink(sink)
    try:
        pipeline.sample()
        pipeline.tick()
        served = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", sink.render().decode(), re.MULTILINE))
        checked = 0
        for rm in pipeline.last_result.data.resource_metrics if pipeline.last_result else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    info = next(i for i in pipeline.catalog.items() if i.name == metric.name)
                    name = _docs.prometheus_name(info.name, info.unit, info.kind)
                    assert name in served, (name, sorted(served))
                    checked += 1
    finally:
        pipeline.close(1.0)
    assert checked >= 10


def test_check_mode_fails_on_a_stale_file_and_write_fixes_it(tmp_path: Path) -> None:
    assert main(["docs", "--check", "--dir", str(tmp_path)]) == 1
    assert main(["docs", "--write", "--dir", str(tmp_path)]) == 0
    assert main(["docs", "--check", "--dir", str(tmp_path)]) == 0
    config = tmp_path / _docs.CONFIGURATION_FILE
    config.write_text(config.read_text().replace("SYSOPS_STORE__SQLITE_PATH", "SYSOPS_STORE__PATH"))
    assert _docs.stale(tmp_path) == [_docs.CONFIGURATION_FILE]
    metrics = tmp_path / _docs.METRICS_FILE
    metrics.write_text(metrics.read_text().replace("| `s` |", "| `ms` |", 1))
    assert _docs.stale(tmp_path) == [_docs.CONFIGURATION_FILE, _docs.METRICS_FILE]


def test_unknown_model_fields_are_walked_recursively() -> None:
    sections = [key for key, _, _ in _docs.iter_settings()]
    for name, field in Settings.model_fields.items():
        if _docs._section_model(field.annotation) is not None:
            assert name in sections


@pytest.mark.slow
def test_module_entry_point_checks_the_committed_docs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "otel_sysops", "docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ["install.md", "troubleshooting.md", "architecture.md"])
def test_files_and_links_the_prose_names_exist(name: str) -> None:
    text = (DOCS / name).read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:deploy|collector-config|docs)/[\w./-]+|Dockerfile)`", text))
    paths |= {f"docs/{link}" for link in re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]+)?\)", text)}
    assert paths, name
    for path in sorted(paths):
        assert (ROOT / path).exists(), f"{name} names {path}, which does not exist"


class _NoSuchDevice(Collector[None]):
    """A collector that refuses every host, as a GPU collector does without a GPU."""

    def __init__(self, ctx: CollectorContext) -> None:
        raise CollectorUnavailableError("no such device")

    def sample(self, now: float) -> None:
        raise AssertionError("never sampled")

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge("sysops.test.device.load", [], "1", "A device's load")


def test_plugins_unavailable_on_this_host_are_still_documented() -> None:
    from otel_sysops.pipeline import Pipeline

    pipeline = Pipeline(_docs.default_settings())
    try:
        _docs.register_for_docs(pipeline, INSTRUMENTATION_GROUP, "nosuchdevice", _NoSuchDevice)
        items = {(i.scope, i.name): i for i in pipeline.catalog.items()}
    finally:
        pipeline.close(1.0)
    info = items[("otel_sysops.instrumentation.nosuchdevice", "sysops.test.device.load")]
    assert (info.kind, info.unit, info.description) == ("gauge", "1", "A device's load")
    with pytest.raises(TypeError):
        _docs.register_for_docs(pipeline, "otel_sysops.analyzers", "x", _NoSuchDevice)


class _Slack(Section):
    """A Slack channel."""

    kind: Literal["slack"] = "slack"
    # Incoming-webhook URL.
    url: SecretStr | None = None


class _Email(Section):
    """An email channel."""

    kind: Literal["email"] = "email"
    to: list[str] = []


class _Alerts(Section):
    """Shapes the sections of other issues may use."""

    channels: list[Annotated[_Slack | _Email, Field(discriminator="kind")]] = []
    routes: dict[str, _Email] = {}
    token: SecretStr = SecretStr("")
    mode: Literal["a", "b"] | None = None


def test_the_walk_renders_containers_of_models_unions_and_secrets() -> None:
    walked = list(_docs.iter_settings(_Alerts, "alerts", "SYSOPS_ALERTS__"))
    assert [(key, model) for key, model, _ in walked] == [
        ("alerts", _Alerts),
        ("alerts.channels[]", _Slack),
        ("alerts.channels[]", _Email),
        ("alerts.routes.<name>", _Email),
    ]
    sections = {(key, model.__name__): leaves for key, model, leaves in walked}
    top = {leaf.key: leaf for leaf in sections["alerts", "_Alerts"]}
    assert top["alerts.token"].type == "secret string"
    assert top["alerts.token"].default == "unset"
    assert top["alerts.token"].description.endswith("Secret: masked by `config show`.")
    assert top["alerts.mode"].type == '"a" | "b" (optional)'
    assert top["alerts.channels"].type.startswith("list of ")
    slack = {leaf.key: leaf for leaf in sections["alerts.channels[]", "_Slack"]}
    assert slack["alerts.channels[].url"].env is None  # items are given in the file or as JSON
    assert (
        slack["alerts.channels[].url"].description == "Incoming-webhook URL. Secret: masked by `config show`."
    )
    assert "alerts.channels[].to" in {leaf.key for leaf in sections["alerts.channels[]", "_Email"]}
    text = _docs.configuration_reference(_Alerts)
    assert "## `channels[]` items\n\nA Slack channel." in text
    assert "## `channels[]` items\n\nAn email channel." in text
    assert (
        "| `channels[].url` | (in the file or as JSON) | secret string (optional) | unset "
        "| Incoming-webhook URL. Secret: masked by `config show`. |" in text
    )
