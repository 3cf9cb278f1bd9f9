"""The line file (YAML): which stations a line has, each a card printer paired with a reader.

```yaml
stations:
  - name: st1
    printer: /dev/ttyUSB0          # or a pty path, or socket://host:port
    reader: "Virtual PCD 00 00"    # PC/SC reader name at the printer's contact station
options:                           # all optional
  card_timeout: 10                 # seconds to wait for the parked card in the reader
  max_attempts: 3                  # cards tried per record before it is given up
  stop_after_auth_failures: 3      # consecutive EXTERNAL AUTHENTICATE failures that stop the line
  pause_retry: 2.0                 # a paused station retries its printer this often (seconds)
  verify_ac: true                  # read-back includes a GENERATE AC verified with the issuer keys
  output_check: ""                 # a directory where finished cards appear as <CHIP SERIAL>.json
                                   # (a vision/reader check of the output hopper); used after a
                                   # crash to tell printed cards from suspect ones
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cardperso.errors import DataError


@dataclass(frozen=True, slots=True)
class StationSpec:
    name: str
    printer: str
    reader: str


@dataclass(frozen=True, slots=True)
class LineOptions:
    card_timeout: float = 10.0
    max_attempts: int = 3
    stop_after_auth_failures: int = 3
    pause_retry: float = 2.0
    verify_ac: bool = True
    output_check: str = ""


@dataclass(frozen=True, slots=True)
class LineSpec:
    stations: tuple[StationSpec, ...]
    options: LineOptions = field(default_factory=LineOptions)
    source: str = ""


_OPTION_TYPES: dict[str, type] = {
    "card_timeout": float,
    "max_attempts": int,
    "stop_after_auth_failures": int,
    "pause_retry": float,
    "verify_ac": bool,
    "output_check": str,
}


#: Limits for a line file (a few lines per station): its size, its stations.
MAX_LINE_FILE = 1 << 20
MAX_STATIONS = 64

#: (smallest, largest) accepted value of the numeric options.
_OPTION_RANGES: dict[str, tuple[float, float]] = {
    "card_timeout": (0.1, 3600.0),
    "max_attempts": (1, 100),
    "stop_after_auth_failures": (1, 1000),
    "pause_retry": (0.01, 3600.0),
}


def parse_line(text: str, source: str = "<line>") -> LineSpec:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(
            f"{source}: not valid YAML ({exc.__class__.__name__})", field="line"
        ) from None
    except RecursionError:
        raise DataError(f"{source}: nested too deep for a line file", field="line") from None
    except ValueError:  # e.g. an integer of thousands of digits
        raise DataError(f"{source}: a value no line file holds", field="line") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("stations"), list)
        or not data["stations"]
    ):
        raise DataError(
            f"{source}: a line file needs a non-empty 'stations' list", field="stations"
        )
    if len(data["stations"]) > MAX_STATIONS:
        raise DataError(
            f"{source}: {len(data['stations'])} stations; a line has at most {MAX_STATIONS}",
            field="stations",
        )
    stations = []
    for n, st in enumerate(data["stations"], 1):
        if not isinstance(st, dict):
            raise DataError(f"{source}: station {n} must be a mapping", field="stations")
        missing = [k for k in ("name", "printer", "reader") if not st.get(k)]
        if missing:
            raise DataError(f"{source}: station {n} lacks {', '.join(missing)}", field="stations")
        stations.append(StationSpec(str(st["name"]), str(st["printer"]), str(st["reader"])))
    names = [s.name for s in stations]
    if len(set(names)) != len(names):
        raise DataError(f"{source}: station names must be unique", field="stations")
    raw_opts = data.get("options") or {}
    if not isinstance(raw_opts, dict):
        raise DataError(f"{source}: 'options' must be a mapping", field="options")
    opts: dict[str, Any] = {}
    for key, value in raw_opts.items():
        kind = _OPTION_TYPES.get(key)
        if kind is None:
            raise DataError(f"{source}: unknown option {key!r}", field=f"options.{key}")
        if kind is bool and not isinstance(value, bool):
            raise DataError(f"{source}: option {key} must be true or false", field=f"options.{key}")
        if kind is not bool and (
            isinstance(value, bool) or not isinstance(value, (int, float, str))
        ):
            raise DataError(
                f"{source}: option {key} must be a {kind.__name__}", field=f"options.{key}"
            )
        try:
            opts[key] = kind(value)
        except (TypeError, ValueError, OverflowError):
            raise DataError(
                f"{source}: option {key} must be a {kind.__name__}", field=f"options.{key}"
            ) from None
        low, high = _OPTION_RANGES.get(key, (0, 0))
        if key in _OPTION_RANGES and not low <= opts[key] <= high:  # NaN fails too
            raise DataError(
                f"{source}: option {key} must be between {low:g} and {high:g}",
                field=f"options.{key}",
            )
    return LineSpec(tuple(stations), LineOptions(**opts), source)


def load_line(path: str | Path) -> LineSpec:
    """Read and check a line file: a regular UTF-8 file of at most :data:`MAX_LINE_FILE`
    bytes (a FIFO, a device or a huge file is refused before it is read)."""
    p = Path(path)
    try:
        if not p.is_file():
            raise DataError(f"line file {p} is not a regular file", field="line")
        with p.open("rb") as fh:
            raw = fh.read(MAX_LINE_FILE + 1)
    except OSError as exc:
        raise DataError(f"cannot read line file {p}: {exc.strerror}", field="line") from None
    if len(raw) > MAX_LINE_FILE:
        raise DataError(
            f"line file {p} is larger than {MAX_LINE_FILE >> 20} MiB: not a line file",
            field="line",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"line file {p} is not UTF-8 (byte {exc.start})", field="line") from None
    return parse_line(text, str(p))


def dump_line(spec: LineSpec) -> str:
    data = {
        "stations": [
            {"name": s.name, "printer": s.printer, "reader": s.reader} for s in spec.stations
        ],
        "options": {k: getattr(spec.options, k) for k in _OPTION_TYPES},
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
