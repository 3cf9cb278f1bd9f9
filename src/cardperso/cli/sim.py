"""``cardperso sim cards|serve`` and ``cardperso readers``: virtual cards behind real PC/SC.

``sim cards`` and ``sim serve`` connect card programs to vpcd reader slots (ports P, P+1, ...)
and serve them until Ctrl-C or SIGTERM; any PC/SC client (pyscard, pcsc_scan, opensc-tool) then
sees ordinary readers with cards in them. pcscd must have vpcd entries for those ports: the
Debian package installs one entry (ports 35963 and 35964); ``--write-readers DIR`` writes
entries for any number of slots and ``--start-pcscd`` (root) restarts pcscd with them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from cardperso.card.native import NativeCard
from cardperso.card.native_fs import chip_image
from cardperso.card.state import GP_TEST_KEY, card_image
from cardperso.card.vcard import VirtualCard
from cardperso.devices.pcsc import list_readers
from cardperso.errors import UsageError
from cardperso.sim import pcscd
from cardperso.sim.vpcd import DEFAULT_READER_TIMEOUT, CardLike, SlotGroup

#: File name of the card image of slot i in ``sim cards --state DIR``.
CARD_NAME = "card-{index:02d}.card"
#: Cards ``sim serve`` serves at once: pcsc-lite serves at most 16 readers to a client, and
#: clients such as pcsc_scan count the plug-and-play pseudo reader among them (with 16 they
#: fail with "Invalid parameter given"), so two are left free (one for a physical reader).
MAX_SERVED = 14
#: Debian's own vpcd entry (``/etc/reader.conf.d/vpcd``): two slots on ports 35963 and 35964.
DEBIAN_VPCD_PORT = 35963


def _wait_for_signal(ready: str = "") -> None:
    """Print ``ready`` and block until Ctrl-C or SIGTERM (the handlers are in place before
    ``ready`` is printed, so a signal sent on seeing it stops the command cleanly)."""
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_int = signal.signal(signal.SIGINT, on_signal)
    try:
        if ready:
            click.echo(ready)
        while not done.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def _readers_setup(
    slots: int, port: int, write_readers: Path | None, start_pcscd: bool, state: Path, name: str
) -> list[str] | None:
    """Write entries / start pcscd as asked; the reader names when we know them."""
    if port + slots - 1 > 65535:
        raise UsageError(f"--port {port}: {slots} slots need ports up to {port + slots - 1}")
    if start_pcscd and write_readers is None:
        write_readers = state / "reader.conf.d"
    if not start_pcscd and not pcscd.pcscd_pids():
        click.echo(
            "note: pcscd is not running; the cards wait for it (as root: `pcscd` or "
            "`systemctl start pcscd`; see docs/virtual-readers.md)"
        )
    if write_readers is None:
        if port == DEBIAN_VPCD_PORT and slots <= 2:
            return ["Virtual PCD 00 00", "Virtual PCD 00 01"][:slots]
        return None
    layout = pcscd.write_reader_entries(write_readers, slots, port, name=name)
    click.echo(f"wrote pcscd reader entries for {slots} slot(s) in {write_readers.resolve()}")
    if start_pcscd:
        daemon = pcscd.Pcscd(write_readers, log_path=state / "pcscd.log")
        daemon.start(replace=True, detach=True)
        click.echo(
            f"started pcscd (pid {daemon.pid}) with those entries; log: {state}/pcscd.log; "
            f"it keeps running after this command (stop it with `kill {daemon.pid}`)"
        )
        pcscd.wait_for_readers([s.name for s in layout])
    else:
        click.echo("to use them, (re)start pcscd " + pcscd.restart_hint(write_readers))
    return [s.name for s in layout]


def _serve(
    cards: Sequence[CardLike],
    paths: Sequence[Path],
    port: int,
    names: list[str] | None,
    reader_timeout: float,
) -> None:
    group = SlotGroup.on_ports(port, cards, names=names, reader_timeout=reader_timeout)
    for i, path in enumerate(paths):
        reader = names[i] if names else f"the vpcd reader slot on port {port + i}"
        click.echo(f"  {reader}  <-  {path}  (port {port + i})")
    if names is None:
        click.echo(
            f"reader names depend on pcscd's vpcd entries for ports {port}..{port + len(cards) - 1}"
            " (see `cardperso readers`; --write-readers DIR writes matching entries)"
        )
    with group:
        _wait_for_signal(f"serving {len(cards)} card(s); Ctrl-C or SIGTERM to stop")
    click.echo("stopped")


F = TypeVar("F", bound=Callable[..., Any])

#: The options both ``sim`` commands end with: pcscd reader entries and the reader timeout.
_READER_OPTIONS = (
    click.option(
        "--write-readers",
        type=click.Path(file_okay=False, path_type=Path),
        help="Write pcscd reader entries for these slots into this directory.",
    ),
    click.option(
        "--start-pcscd",
        is_flag=True,
        help="(root) Stop the running pcscd and start `pcscd -f -c` with the entries.",
    ),
    click.option(
        "--name",
        default=pcscd.DEFAULT_NAME,
        show_default=True,
        help="Reader name prefix in the written entries.",
    ),
    click.option(
        "--reader-timeout",
        type=float,
        default=DEFAULT_READER_TIMEOUT,
        show_default=True,
        help="Seconds before a mute card's command fails, like a real reader.",
    ),
)


def _reader_options(f: F) -> F:
    for option in reversed(_READER_OPTIONS):
        f = option(f)
    return f


#: The options that choose the card vendor's transport key new blank cards carry.
_TRANSPORT_OPTIONS = (
    click.option(
        "--transport-key",
        "transport_hex",
        default=None,
        help="The card vendor's transport key of new blank cards, in hex (default: the "
        "GlobalPlatform test key 40..4F).",
    ),
    click.option(
        "--keys",
        "transport_store",
        default=None,
        help="Take the blanks' transport key from this key store (file or pkcs11:CONFIG).",
    ),
    click.option(
        "--transport-key-name",
        default=None,
        help="With --keys: the key's name (default gp-transport, gp-transport-aes for SCP03).",
    ),
)


def transport_key_options(f: F) -> F:
    for option in reversed(_TRANSPORT_OPTIONS):
        f = option(f)
    return f


def transport_key(
    hex_value: str | None, store_spec: str | None, name: str | None, scp: str
) -> bytes:
    """The transport key blank cards are made with: ``--transport-key HEX``, the key ``name`` of
    the store ``--keys`` (``gp-transport[-aes]``), or the GP test key. The value never appears
    in a message."""
    if hex_value is not None and store_spec is not None:
        raise UsageError("give --transport-key or --keys, not both")
    if name is not None and store_spec is None:
        raise UsageError("--transport-key-name needs --keys STORE")
    if hex_value is not None:
        try:
            return bytes.fromhex(hex_value)
        except ValueError:
            raise UsageError("--transport-key is not hexadecimal") from None
    if store_spec is None:
        return GP_TEST_KEY
    from cardperso.cli.keys import open_store

    name = name or ("gp-transport-aes" if scp == "03" else "gp-transport")
    with open_store(store_spec) as store:
        if name not in store.names():
            raise UsageError(
                f"key store {store.location} has no key {name!r} (the card vendor's transport "
                "key; import it with `cardperso keys import-components`)"
            )
        want = "AES" if scp == "03" else "3DES"
        if store.info(name).algorithm != want:
            raise UsageError(f"key {name!r} is not a {want} key: SCP{scp} blanks need one")
        # diversification "none": the card's keys are the transport key itself
        (keys,) = store.diversify_gp(name, [bytes(10)], "none", wrap_under=None)
        return keys.enc.secret().value


@click.group("sim")
def sim_group() -> None:
    """Simulators: virtual cards in vpcd reader slots behind pcscd."""


@sim_group.command("cards")
@click.option(
    "--slots",
    type=click.IntRange(1, MAX_SERVED),
    default=2,
    show_default=True,
    help=f"Number of reader slots (one card each; at most {MAX_SERVED}, what PC/SC clients "
    "can list).",
)
@click.option(
    "--port",
    type=click.IntRange(1024, 65533),
    default=DEBIAN_VPCD_PORT,
    show_default=True,
    help="vpcd port of the first slot (slots use P, P+1, ...).",
)
@click.option(
    "--state",
    "state",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory of the card images (blank cards are created when absent).",
)
@click.option(
    "--scp",
    type=click.Choice(["02", "03"]),
    default="02",
    show_default=True,
    help="Secure channel protocol of new blank cards.",
)
@transport_key_options
@_reader_options
def sim_cards(
    slots: int,
    port: int,
    state: Path,
    scp: str,
    write_readers: Path | None,
    start_pcscd: bool,
    name: str,
    reader_timeout: float,
    transport_hex: str | None,
    transport_store: str | None,
    transport_key_name: str | None,
) -> None:
    """Serve N virtual cards (blank ones created in STATE) until Ctrl-C/SIGTERM."""
    key = transport_key(transport_hex, transport_store, transport_key_name, scp)
    which = "GP test keys" if key == GP_TEST_KEY else "the given transport key"
    state.mkdir(parents=True, exist_ok=True)
    paths = [state / CARD_NAME.format(index=i) for i in range(slots)]
    cards: list[CardLike] = []
    for path in paths:
        if path.exists():
            cards.append(load_image(path))
        else:
            cards.append(VirtualCard.create_blank(path, scp=scp, transport_key=key))
            click.echo(f"created blank card {path} (SCP{scp}, {which})")
    names = _readers_setup(slots, port, write_readers, start_pcscd, state, name)
    _serve(cards, paths, port, names, reader_timeout)


def select_images(
    cards_dir: Path, only: Sequence[str], limit: int = MAX_SERVED
) -> tuple[list[Path], int, int]:
    """The card images of ``cards_dir`` to serve (sorted by file name), GP cards and native
    chips alike: those whose chip serial ``only`` names, else the first ``limit``; with the
    number of card images and of other files (printed faces, magnetic tracks...: recognised by
    the image's format field, not its name)."""
    images: list[tuple[Path, str]] = []
    others = 0
    for path in sorted(p for p in cards_dir.iterdir() if not p.name.startswith(".")):
        state = card_image(path) or chip_image(path)
        if state is None:
            others += 1
        else:
            images.append((path, state.serial.hex().upper()))
    if not images:
        raise UsageError(
            f"no card images in {cards_dir} ({others} other file(s): faces, tracks, ...)"
        )
    if not only:
        return [p for p, _ in images[:limit]], len(images), others
    wanted = [w.strip().upper() for item in only for w in item.split(",") if w.strip()]
    by_serial = {serial: path for path, serial in images}
    unknown = [w for w in wanted if w not in by_serial]
    if unknown:
        raise UsageError(
            f"--only: no card image with chip serial {', '.join(unknown)} in {cards_dir}"
        )
    chosen = list(dict.fromkeys(by_serial[w] for w in wanted))
    if len(chosen) > limit:
        raise UsageError(
            f"--only names {len(chosen)} cards; pcscd serves at most {limit} at a time"
        )
    return chosen, len(images), others


def load_image(path: Path) -> CardLike:
    """A stored image as the card it holds: a native chip or a GP card (by its format)."""
    if chip_image(path) is not None:
        return NativeCard.load(path)
    return VirtualCard.load(path)


@sim_group.command("serve")
@click.option(
    "--cards",
    "cards_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Directory of card images (other files in it are skipped), one card per slot.",
)
@click.option(
    "--port",
    type=click.IntRange(1024, 65533),
    default=DEBIAN_VPCD_PORT,
    show_default=True,
    help="vpcd port of the first slot.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="SERIAL",
    help=f"Serve only the card with this chip serial (repeat, or comma-separated; at most "
    f"{MAX_SERVED}). Default: the first {MAX_SERVED} images by file name.",
)
@click.option(
    "--contactless",
    is_flag=True,
    help="Serve the GP cards as in a contactless reader's field (the PBOC application answers "
    "its contactless FCI and takes the qPBOC path).",
)
@_reader_options
def sim_serve(
    cards_dir: Path,
    port: int,
    only: tuple[str, ...],
    contactless: bool,
    write_readers: Path | None,
    start_pcscd: bool,
    name: str,
    reader_timeout: float,
) -> None:
    """Serve stored card images (e.g. personalized cards) one per slot, for any PC/SC tool."""
    paths, total, others = select_images(cards_dir, only)
    if others:
        click.echo(f"skipped {others} file(s) that are not card images")
    if len(paths) < total:
        rest = "choose others with --only SERIAL" if not only else "chosen with --only"
        click.echo(f"serving {len(paths)} of {total} cards; {rest}")
    cards = [load_image(p) for p in paths]
    for card in cards:
        if contactless and isinstance(card, VirtualCard):
            card.contactless = True
    state = write_readers.parent if write_readers is not None else cards_dir
    names = _readers_setup(len(paths), port, write_readers, start_pcscd, state, name)
    _serve(cards, paths, port, names, reader_timeout)


@click.command("readers")
def readers_cmd() -> None:
    """List PC/SC readers, whether a card is present, and its ATR."""
    readers = list_readers()
    if not readers:
        click.echo("no PC/SC readers (is pcscd running? see docs/virtual-readers.md)")
        return
    width = max(len(r.name) for r in readers)
    for r in readers:
        card = f"card  ATR {r.atr.hex().upper()}" if r.card_present else "empty"
        click.echo(f"{r.name:<{width}}  {card}")


COMMANDS = [sim_group, readers_cmd]
