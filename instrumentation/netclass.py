"""Network interfaces as sysfs sees them: link state, carrier and its changes, speed, MTU, queue
length, duplex, bonding slaves; carrier flaps over the last five minutes. `hw.network.up` covers
the physical adapters (those with a `device` link) and bonds that are administratively up (IFF_UP
in `flags`), so a bridge or veth without carrier and an interface taken down on purpose never
look like a broken link.

Source: {sysfs}/class/net/<iface>/ (Documentation/ABI/testing/sysfs-class-net) and, for bonds,
bonding/slaves with each slave's bonding_slave/mii_status (Documentation/networking/bonding.rst).
The interface patterns of `[instrumentation.network]` apply.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.hw_attributes import HW_ID, HW_TYPE
from opentelemetry.semconv._incubating.attributes.network_attributes import (
    NETWORK_INTERFACE_NAME,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics as hm

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.netclass import Interface, read_interface
from ._optional import read_attribute
from ._source import require_readable
from .network import interface_selected

UP = "sysops.network.interface.up"
IFF_UP = 0x1  # include/uapi/linux/if.h: administratively up
CARRIER = "sysops.network.interface.carrier"
CARRIER_CHANGES = "sysops.network.interface.carrier.changes"
FLAPS = "sysops.network.interface.carrier.flaps"
SPEED = "sysops.network.interface.speed"
MTU = "sysops.network.interface.mtu"
QUEUE = "sysops.network.interface.transmit_queue.length"
INFO = "sysops.network.interface.info"
BOND_SLAVES = "sysops.network.bond.slaves"
# Window over which carrier changes count as flaps (seconds).
FLAP_WINDOW = 300.0


@dataclass(slots=True)
class NetClassSnapshot:
    """This tick's interfaces and the carrier changes each saw within the flap window."""

    interfaces: dict[str, Interface] = field(default_factory=dict)
    flaps: dict[str, int] = field(default_factory=dict)
    # Physical adapters (a `device` link) and bonds that are administratively up -> link up
    links: dict[str, bool] = field(default_factory=dict)


class NetClassCollector(Collector[NetClassSnapshot]):
    """`sysops.network.interface.*` and `sysops.network.bond.slaves`."""

    def __init__(self, ctx: CollectorContext, clock: Callable[[], float] | None = None) -> None:
        """`clock`: monotonic seconds for the flap window (default: the tick's own time)."""
        super().__init__(ctx)
        self._clock = clock
        self._dir = ctx.sysfs / "class" / "net"
        require_readable(self._dir)
        cfg = ctx.settings.instrumentation.network
        self._include, self._exclude = cfg.include_interfaces, cfg.exclude_interfaces
        # interface -> (monotonic seconds, carrier_changes) readings within the flap window
        self._history: dict[str, deque[tuple[float, int]]] = {}

    def sample(self, now: float) -> NetClassSnapshot:
        if self._clock is not None:
            now = self._clock()
        snap = NetClassSnapshot()
        try:
            names = sorted(os.listdir(self._dir))
        except OSError:
            self.ctx.count_error("read_error")
            return snap
        for name in names:
            if not interface_selected(name, self._include, self._exclude):
                continue
            iface = read_interface(self._dir / name, read_attribute)
            if not iface.ints and not iface.texts:
                continue  # gone between listing and reading
            self.ctx.count_error("malformed_line", iface.malformed)
            snap.interfaces[name] = iface
            path = self._dir / name
            flags = read_attribute(path / "flags")
            try:
                admin_up = flags is not None and bool(int(flags.strip(), 16) & IFF_UP)
            except ValueError:
                self.ctx.count_error("malformed_line")
                admin_up = False
            if admin_up and ((path / "device").exists() or (path / "bonding").is_dir()):
                snap.links[name] = iface.texts.get("operstate") == "up" and iface.ints.get("carrier", 0) == 1
            changes = iface.ints.get("carrier_changes")
            if changes is not None:
                history = self._history.setdefault(name, deque())
                history.append((now, changes))
                while history and history[0][0] < now - FLAP_WINDOW:
                    history.popleft()
                snap.flaps[name] = max(0, changes - history[0][1])
        for gone in self._history.keys() - snap.interfaces.keys():
            del self._history[gone]
        return snap

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_up_down_counter(
            hm.HW_NETWORK_UP,
            [self._links],
            "1",
            "Link up (1) or down (0) of physical adapters and bonds that are administratively up",
        )
        meter.create_observable_gauge(
            UP, [self._up], "1", "Interface operationally up (operstate up: 1, else 0)"
        )
        meter.create_observable_gauge(
            CARRIER, [self._int("carrier")], "1", "Physical link present (1) or not (0); absent while down"
        )
        meter.create_observable_counter(
            CARRIER_CHANGES, [self._changes], "{change}", "Times the carrier went up and down"
        )
        meter.create_observable_gauge(
            FLAPS, [self._flaps], "{change}", "Carrier changes during the last five minutes"
        )
        meter.create_observable_gauge(SPEED, [self._speed], "bit/s", "Negotiated link speed")
        meter.create_observable_gauge(MTU, [self._int("mtu")], "By", "Maximum transmission unit")
        meter.create_observable_gauge(
            QUEUE, [self._int("tx_queue_len")], "{packet}", "Transmit queue length (txqueuelen)"
        )
        meter.create_observable_gauge(
            INFO, [self._info], "1", "Always 1; the interface's operstate, duplex and hardware address"
        )
        meter.create_observable_up_down_counter(
            BOND_SLAVES, [self._slaves], "{interface}", "Slaves of each bond by MII status (up, down)"
        )

    def _items(self) -> Iterable[tuple[str, Interface]]:
        return ({} if self.snapshot is None else self.snapshot.interfaces).items()

    def _links(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, up in ({} if self.snapshot is None else self.snapshot.links).items():
            yield Observation(1 if up else 0, {HW_ID: name, HW_TYPE: "network", NETWORK_INTERFACE_NAME: name})

    def _up(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, iface in self._items():
            if "operstate" in iface.texts:
                yield Observation(
                    1 if iface.texts["operstate"] == "up" else 0, {NETWORK_INTERFACE_NAME: name}
                )

    def _int(self, attr: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for name, iface in self._items():
                if attr in iface.ints:
                    yield Observation(iface.ints[attr], {NETWORK_INTERFACE_NAME: name})

        return observe

    def _changes(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, iface in self._items():
            for attr, direction in (("carrier_up_count", "up"), ("carrier_down_count", "down")):
                if attr in iface.ints:
                    yield Observation(
                        iface.ints[attr],
                        {NETWORK_INTERFACE_NAME: name, "sysops.network.carrier.direction": direction},
                    )

    def _flaps(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, n in ({} if self.snapshot is None else self.snapshot.flaps).items():
            yield Observation(n, {NETWORK_INTERFACE_NAME: name})

    def _speed(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, iface in self._items():
            mbps = iface.ints.get("speed")
            if mbps is not None and mbps > 0:  # -1: unknown (virtual interfaces)
                yield Observation(mbps * 1_000_000, {NETWORK_INTERFACE_NAME: name})

    def _info(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, iface in self._items():
            attrs = {NETWORK_INTERFACE_NAME: name}
            # Every point carries the same keys ("unknown" when the file is absent or unreadable,
            # as duplex is while an interface is down): exporters fill missing keys differently.
            for attr in ("operstate", "duplex", "address"):
                attrs[f"sysops.network.interface.{attr}"] = iface.texts.get(attr, "unknown")
            yield Observation(1, attrs)

    def _slaves(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, iface in self._items():
            if not iface.slaves:
                continue
            states = list(iface.slaves.values())
            for state in ("up", "down"):
                yield Observation(
                    states.count(state),
                    {NETWORK_INTERFACE_NAME: name, "sysops.network.bond.slave.state": state},
                )
