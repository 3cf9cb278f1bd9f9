"""pcscd reader entries for vpcd slots: one entry and one driver copy per two slots."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.errors import UsageError
from cardperso.sim import pcscd


def test_layout_names_and_ports() -> None:
    layout = pcscd.reader_layout(5, 36000, "lab")
    assert [(s.index, s.name, s.port) for s in layout] == [
        (0, "lab 36000 00 00", 36000),
        (1, "lab 36000 00 01", 36001),
        (2, "lab 36002 00 00", 36002),
        (3, "lab 36002 00 01", 36003),
        (4, "lab 36004 00 00", 36004),
    ]
    with pytest.raises(UsageError, match="at least one slot"):
        pcscd.reader_layout(0, 36000)
    with pytest.raises(UsageError, match=r"ports 80\.\.81 are out of range"):
        pcscd.reader_layout(2, 80)


def _fake_driver(tmp_path: Path) -> Path:
    driver = tmp_path / "libifdvpcd.so"
    driver.write_bytes(b"\x7fELF fake driver for the entry writer")
    return driver


def test_entries_each_with_its_own_driver_copy(tmp_path: Path) -> None:
    config = tmp_path / "reader.conf.d"
    config.mkdir()
    (config / "someone-else").write_text("# kept\n")
    layout = pcscd.write_reader_entries(config, 3, 36010, name="t", driver=_fake_driver(tmp_path))
    assert [s.name for s in layout] == ["t 36010 00 00", "t 36010 00 01", "t 36012 00 00"]
    entries = sorted(config.glob(pcscd.ENTRY_PREFIX + "*"))
    assert [e.name for e in entries] == ["cardperso-vpcd-36010", "cardperso-vpcd-36012"]
    libs = []
    for entry, port in zip(entries, (36010, 36012), strict=True):
        fields = dict(
            line.split(None, 1) for line in entry.read_text().splitlines() if line[:1] != "#"
        )
        assert fields["FRIENDLYNAME"] == f'"t {port}"'
        assert fields["CHANNELID"] == str(port)
        assert fields["DEVICENAME"] == f"/dev/null:{port}"
        lib = Path(fields["LIBPATH"])
        assert lib.read_bytes() == _fake_driver(tmp_path).read_bytes()
        assert config.resolve() not in lib.parents  # pcscd parses every file in the dir
        libs.append(lib)
    assert len(set(libs)) == 2  # one copy per entry
    assert (config / "someone-else").exists()
    # Rewriting with fewer slots drops our old entries.
    pcscd.write_reader_entries(config, 1, 36020, name="t", driver=_fake_driver(tmp_path))
    assert sorted(e.name for e in config.glob(pcscd.ENTRY_PREFIX + "*")) == ["cardperso-vpcd-36020"]


def test_drivers_inside_the_config_dir_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="outside"):
        pcscd.write_reader_entries(
            tmp_path, 2, 36000, driver=_fake_driver(tmp_path), drivers_dir=tmp_path / "x"
        )


def test_find_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARDPERSO_VPCD_DRIVER", str(_fake_driver(tmp_path)))
    assert pcscd.find_vpcd_driver() == _fake_driver(tmp_path)
    monkeypatch.setenv("CARDPERSO_VPCD_DRIVER", str(tmp_path / "missing.so"))
    with pytest.raises(UsageError, match=r"missing\.so is not a file"):
        pcscd.find_vpcd_driver()
    monkeypatch.delenv("CARDPERSO_VPCD_DRIVER")
    assert pcscd.find_vpcd_driver().name == "libifdvpcd.so"  # installed by vsmartcard-vpcd
