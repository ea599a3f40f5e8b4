"""The outbox: order, bound, latest-only inventory, and the on-disk spool across restarts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_sysops.bridge import Outbox, Subjects, alert_payload, host_token
from otel_sysops.bridge._payloads import alert_msg_id
from tests.bridge.support import make_alert, validate


def test_order_bound_and_count() -> None:
    box = Outbox(3)
    for i in range(5):
        box.put("s", str(i).encode(), "alert", f"id-{i}")
    assert box.dropped == 2
    assert [m.payload for m in box.peek(10)] == [b"2", b"3", b"4"]
    box.ack(box.peek(2))
    assert [m.payload for m in box.peek(10)] == [b"4"]


def test_latest_inventory_replaces_the_held_one() -> None:
    box = Outbox(10)
    box.put("a", b"1", "alert")
    box.put_latest("i", b"old", "inventory")
    box.put("a", b"2", "alert")
    box.put_latest("i", b"new", "inventory")
    assert [(m.kind, m.payload) for m in box.peek(10)] == [
        ("alert", b"1"),
        ("alert", b"2"),
        ("inventory", b"new"),
    ]
    assert box.kinds() == {"alert": 2, "inventory": 1}


def test_ack_of_a_dropped_message_is_harmless() -> None:
    box = Outbox(1)
    first = box.put("s", b"1", "alert")
    box.put("s", b"2", "alert")
    box.ack([first])
    assert [m.payload for m in box.peek(5)] == [b"2"]


def test_spool_survives_a_restart(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    box = Outbox(100, spool)
    for i in range(10):
        box.put("sysops.h.alerts", f"payload-{i}".encode(), "alert", f"id-{i}")
    box.put_latest("sysops.h.inventory", b"inv", "inventory")
    box.ack(box.peek(3))
    again = Outbox(100, spool)
    held = again.peek(100)
    assert [m.payload for m in held] == [*(f"payload-{i}".encode() for i in range(3, 10)), b"inv"]
    assert [m.msg_id for m in held[:2]] == ["id-3", "id-4"]
    # New messages continue after the reloaded ones.
    later = again.put("sysops.h.alerts", b"later", "alert")
    assert later.seq > held[-1].seq
    assert [m.payload for m in Outbox(100, spool).peek(100)][-1] == b"later"


def test_spool_sets_aside_a_corrupt_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    box = Outbox(10, spool)
    box.put("s", b"good", "alert")
    (spool / "0000000000000099.msg").write_bytes(b"not json\npayload")
    again = Outbox(10, spool)
    assert [m.payload for m in again.peek(10)] == [b"good"]
    assert again.spool_errors == 1
    assert (spool / "0000000000000099.bad").exists()


def test_spool_reload_respects_a_smaller_capacity(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    box = Outbox(10, spool)
    for i in range(6):
        box.put("s", str(i).encode(), "alert")
    smaller = Outbox(4, spool)
    assert [m.payload for m in smaller.peek(10)] == [b"2", b"3", b"4", b"5"]
    assert smaller.dropped == 2
    assert len(list(spool.glob("*.msg"))) == 4


@settings(max_examples=50)
@given(st.lists(st.sampled_from(["put", "latest", "ack"]), max_size=60), st.integers(1, 8))
def test_outbox_invariants(ops: list[str], capacity: int) -> None:
    box = Outbox(capacity)
    for n, op in enumerate(ops):
        if op == "put":
            box.put("s", str(n).encode(), "alert")
        elif op == "latest":
            box.put_latest("i", str(n).encode(), "inventory")
        else:
            box.ack(box.peek(1))
        held = box.peek(100)
        assert len(held) <= capacity
        assert [m.seq for m in held] == sorted(m.seq for m in held)
        assert sum(1 for m in held if m.kind == "inventory") <= 1


def test_subjects_and_alert_payload() -> None:
    subjects = Subjects("sysops", "web-1.example.com")
    assert subjects.alerts == "sysops.web-1_example_com.alerts"
    assert subjects.control("status") == "sysops.web-1_example_com.control.status"
    assert host_token("a b*c>d") == "a_b_c_d"
    assert Subjects("corp.sysops", "h").heartbeat == "corp.sysops.h.heartbeat"
    firing, resolved = make_alert(1), make_alert(1, state="resolved")
    validate(alert_payload(firing), "alert")
    validate(alert_payload(resolved), "alert")
    assert alert_msg_id(firing) == "alert-1"
    assert alert_msg_id(resolved) == "alert-1:resolved"


def test_channel_send_only_enqueues() -> None:
    """With the bridge never started (no connection at all), send still completes: it only enqueues."""
    import anyio

    from otel_sysops.alerts import Notification
    from otel_sysops.bridge import NatsBridge
    from otel_sysops.settings._nats import NatsSettings

    bridge = NatsBridge(NatsSettings(url="nats://127.0.0.1:1"), "h")
    anyio.run(bridge.channel.send, Notification([make_alert(1), make_alert(2)]), backend="asyncio")
    assert [m.msg_id for m in bridge.outbox.peek(5)] == ["alert-1", "alert-2"]
    assert bridge.channel.name == "nats"


def test_unusable_spool_dir_is_a_config_error(tmp_path: Path) -> None:
    import pytest

    from otel_sysops.bridge import NatsBridge
    from otel_sysops.errors import ConfigError
    from otel_sysops.settings._nats import NatsSettings

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"nats\.spool_dir"):
        NatsBridge(NatsSettings(url="nats://127.0.0.1:1", spool_dir=blocker / "spool"), "h")


def test_nats_py_is_not_imported_until_needed() -> None:
    """The agent, its services and its CLI load without nats-py (memory budget when NATS is off)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import otel_sysops.services, otel_sysops.cli, otel_sysops.bridge, otel_sysops.inventory\n"
        "from otel_sysops.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
