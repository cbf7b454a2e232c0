"""CPU package and DRAM energy from RAPL counters under /sys/class/powercap.

Each zone directory (``intel-rapl:0``, its subzone ``intel-rapl:0:2``, or the ``amd-rapl:N`` style)
holds ``name`` (``package-0``, ``dram``, ...), ``energy_uj`` (a cumulative counter, Units: uJ) and
``max_energy_range_uj`` (where the counter wraps to zero). Package zones become ``cpu-package:N``
and DRAM zones ``dram:N``. ``core``/``uncore`` subzones are skipped (the package already contains
them), as are ``psys`` (the whole platform, overlapping both) and ``intel-rapl-mmio`` (a second
view of the same package counter).

Every file is read through :func:`read_sysfs`, the one place tests make a read fail.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from profiler.energy.common import (
    BackendUnavailable,
    EnergyBackend,
    EnergyError,
    EnergyPermissionError,
    Reading,
)

#: Where the kernel's powercap class lives; a parameter everywhere so tests can serve fake files.
POWERCAP_ROOT: Final = Path("/sys/class/powercap")
#: RAPL energy counters update about once a millisecond (Hähnel et al., "Measuring energy
#: consumption for short code paths using RAPL", 2012).
RAPL_UPDATE_PERIOD_S: Final = 0.001
#: Highest package power we plan for when choosing how often to check for wraparound. Units: W.
_MAX_PLAUSIBLE_POWER_W: Final = 1000.0
_ZONE_NAME = re.compile(r"^(?P<vendor>[a-z]+)-rapl:(?P<zone>\d+)(?::(?P<sub>\d+))?$")


def read_sysfs(path: Path) -> str:
    """Read one sysfs attribute (the single read path; raises PermissionError when not allowed)."""
    return path.read_text().strip()


def permission_message(root: Path, path: Path, vendor: str = "intel") -> str:
    """What to tell a user whose RAPL counters exist but cannot be read."""
    zones = f"{root}/{vendor}-rapl:*"
    return (
        f"RAPL counters exist under {root} but {path} is not readable by this user (Linux 5.10 and "
        "later make energy_uj readable by root only, because of CVE-2020-8694). To measure CPU "
        f"energy, run as root, or make the counters readable until the next reboot with "
        f"`sudo chmod a+r {zones}/energy_uj {zones}:*/energy_uj`."
    )


@dataclass(frozen=True)
class RaplZone:
    """One counter: its domain name, its ``energy_uj`` file, and its wrap point. Units: uJ."""

    domain: str
    energy_path: Path
    max_energy_range_uj: int | None
    vendor: str = "intel"


def _sort_key(path: Path) -> tuple[str, int, int]:
    match = _ZONE_NAME.match(path.name)
    if match is None:  # pragma: no cover - callers filter first
        return ("", 0, 0)
    sub = match["sub"]
    return (match["vendor"], int(match["zone"]), -1 if sub is None else int(sub))


def _read_name(path: Path, root: Path, vendor: str) -> str:
    try:
        return read_sysfs(path)
    except PermissionError as error:
        raise EnergyPermissionError(permission_message(root, path, vendor)) from error
    except OSError as error:
        raise BackendUnavailable(f"could not read {path}: {error}") from error


def _read_max_range(path: Path) -> int | None:
    try:
        value = int(read_sysfs(path))
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


def discover_zones(root: Path = POWERCAP_ROOT) -> list[RaplZone]:
    """Find the package and DRAM counters under ``root``.

    Raises:
        BackendUnavailable: no powercap directory, or no package or DRAM zone in it.
        EnergyPermissionError: the zone names cannot be read.
    """
    if not root.is_dir():
        raise BackendUnavailable(
            f"{root} does not exist: no RAPL here (not Linux, a VM or container without powercap, "
            "or a CPU without RAPL)."
        )
    entries = sorted((p for p in root.iterdir() if _ZONE_NAME.match(p.name)), key=_sort_key)
    zones: dict[str, RaplZone] = {}
    package_of: dict[str, int] = {}
    for entry in entries:
        match = _ZONE_NAME.match(entry.name)
        if match is None or not (entry / "energy_uj").exists():
            continue
        vendor, zone, sub = match["vendor"], int(match["zone"]), match["sub"]
        name = _read_name(entry / "name", root, vendor)
        if sub is None and name.startswith("package-"):
            suffix = name.removeprefix("package-")
            package = int(suffix) if suffix.isdigit() else zone
            package_of[f"{vendor}-rapl:{zone}"] = package
            domain = f"cpu-package:{package}"
        elif name == "dram":
            domain = f"dram:{package_of.get(f'{vendor}-rapl:{zone}', zone)}"
        else:
            continue
        if domain not in zones:
            max_range = _read_max_range(entry / "max_energy_range_uj")
            zones[domain] = RaplZone(domain, entry / "energy_uj", max_range, vendor)
    if not zones:
        raise BackendUnavailable(f"{root} exists but has no RAPL package or DRAM zone.")
    return list(zones.values())


class RaplBackend(EnergyBackend):
    """CPU package and DRAM energy from RAPL counters, with wraparound handled.

    Each read unwraps every counter against the previous read: when a counter went down, it wrapped
    at ``max_energy_range_uj``. That is exact as long as reads come more often than one wrap period
    (minutes at full power), so a daemon thread reads every ``poll_s`` seconds while the backend
    lives; long windows stay correct without anyone calling in between.

    Args:
        zones: the counters to read, from :func:`discover_zones`.
        root: the powercap directory, for messages.
        clock: monotonic clock for reading times (injected in tests).
        poll_s: seconds between wraparound checks; None picks a quarter of the shortest wrap time
            at 1 kW (at most 10 s); 0 runs no thread (tests).

    Raises:
        EnergyPermissionError: the counters exist but cannot be read.
    """

    source = "rapl"

    def __init__(
        self,
        zones: list[RaplZone],
        root: Path = POWERCAP_ROOT,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float | None = None,
    ) -> None:
        if not zones:
            raise BackendUnavailable("no RAPL zones to read.")
        self._zones = list(zones)
        self._root = root
        self._clock = clock
        self.domains = tuple(zone.domain for zone in zones)
        self.update_period_s = RAPL_UPDATE_PERIOD_S
        self._lock = threading.Lock()
        self._last_raw: list[int | None] = [None] * len(zones)
        self._offset_uj = [0] * len(zones)
        self._notes: list[str] = []
        self.read()  # fails here, at probe time, if the counters are unreadable
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_s = self._default_poll_s() if poll_s is None else poll_s
        if self._poll_s > 0:
            self._thread = threading.Thread(target=self._run, name="energy-rapl-wrap", daemon=True)
            self._thread.start()

    def _default_poll_s(self) -> float:
        ranges_j = [z.max_energy_range_uj / 1e6 for z in self._zones if z.max_energy_range_uj]
        wrap_s = min(ranges_j, default=1e9) / _MAX_PLAUSIBLE_POWER_W
        return min(10.0, wrap_s / 4.0)

    def _read_raw(self, zone: RaplZone) -> int:
        try:
            return int(read_sysfs(zone.energy_path))
        except PermissionError as error:
            raise EnergyPermissionError(
                permission_message(self._root, zone.energy_path, zone.vendor)
            ) from error
        except (OSError, ValueError) as error:
            raise EnergyError(f"could not read {zone.energy_path}: {error}") from error

    def read(self) -> Reading:
        """Unwrapped counters of every zone. Units: uJ."""
        with self._lock:  # the wrap thread and window boundaries both read
            time_s = self._clock()
            values = []
            for position, zone in enumerate(self._zones):
                energy_uj = self._read_raw(zone)
                last = self._last_raw[position]
                if last is not None and energy_uj < last:
                    if zone.max_energy_range_uj:
                        self._offset_uj[position] += zone.max_energy_range_uj
                    else:
                        self._notes.append(
                            f"{zone.energy_path} went backwards and has no max_energy_range_uj; "
                            "energy across that wrap is missing."
                        )
                self._last_raw[position] = energy_uj
                values.append(float(energy_uj + self._offset_uj[position]))
        return Reading(time_s, tuple(values))

    def energy_j(self, start: Reading, end: Reading) -> dict[str, float]:
        """Counter differences, uJ to J."""
        return {
            domain: (energy_uj_end - energy_uj_start) / 1e6
            for domain, energy_uj_start, energy_uj_end in zip(
                self.domains, start.counters, end.counters, strict=True
            )
        }

    def window_warnings(self, start: Reading, end: Reading) -> list[str]:
        """Wraps that could not be corrected."""
        return list(self._notes)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.read()
            except EnergyError as error:
                self._notes.append(f"RAPL wraparound check failed: {error}")

    def close(self) -> None:
        """Stop the wraparound thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None


def probe_rapl(root: Path = POWERCAP_ROOT, poll_s: float | None = None) -> RaplBackend:
    """The RAPL backend for ``root``, read once to prove the counters are readable.

    Raises:
        BackendUnavailable: no RAPL zones.
        EnergyPermissionError: zones exist but their counters cannot be read.
    """
    return RaplBackend(discover_zones(root), root=root, poll_s=poll_s)
