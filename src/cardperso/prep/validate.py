"""Record validation: every rule of the input, fast on good records, precise on bad ones.

How this works
--------------
A :class:`Validator` is compiled once per (profile, input columns). :meth:`Validator.check`
takes one record as a ``dict`` of canonical field name → string and returns the normalized
record (the same dict, with derived values added) or raises :class:`Reject` naming the field
and a reason a person can act on.

Good records are the common case, so each rule first runs a cheap test (digit and length
checks with ``str`` methods, table lookups, cached calendar dates); only when the cheap test
fails does the validator ask the full validator of :mod:`cardperso.codec.numbers` for the
precise reason. Duplicates are not checked here: the batch pipeline checks them in input order
(:mod:`cardperso.prep.dedup`) so that the first occurrence wins whatever the worker count.

Derived values added to a valid record: ``name_head`` / ``name_ext`` (the GBK name split over
EF06 tags 09 and 4E), ``expiry_yymm``, ``pin`` (from the input or empty when the PIN is
seeded), the four EC amounts as ints (``ec``), ``card_id`` (16 bytes).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import stat
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from cardperso.codec import numbers
from cardperso.codec.fields import card_id_tail, split_gbk
from cardperso.codec.photo import CARD_PHOTO, PhotoSpec, check_frame, frame
from cardperso.errors import DataError
from cardperso.profiles.fields import OPTIONAL_FIELDS, PBOC_FIELDS
from cardperso.profiles.model import Profile

__all__ = [
    "PHOTO_MAX_BYTES",
    "PHOTO_SPECS",
    "ROW",
    "Reject",
    "Validator",
    "check_jpeg",
    "date_ordinal",
    "read_photo",
]

#: Field name used for problems with a whole row (CSV shape, encoding, JSON syntax).
ROW = "(row)"


class Reject(Exception):
    """A record is rejected: ``field`` and ``reason`` go to the rejects file, and ``end_line``
    (the last input line of a record over several lines; 0 for a one-line record)."""

    __slots__ = ("end_line", "field", "reason")

    def __init__(self, field: str, reason: str, end_line: int = 0) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason
        self.end_line = end_line


_DATE_CACHE: dict[str, int] = {}


def date_ordinal(s: str, field: str) -> int:
    """Proleptic ordinal of a ``YYYYMMDD`` date (cached); :class:`Reject` when not a date."""
    got = _DATE_CACHE.get(s)
    if got is not None:
        return got
    try:
        d = numbers.parse_date(s, field)
    except DataError as exc:
        raise Reject(field, exc.reason) from None
    if d.year < 1900:
        raise Reject(field, "year before 1900 is not plausible")
    ordinal = d.toordinal()
    if len(_DATE_CACHE) < 200_000:
        _DATE_CACHE[s] = ordinal
    return ordinal


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM_SET = frozenset(_ALNUM)
_CARD_W = (3, 7, 9, 10, 5, 8, 4, 2)
_CARD_VAL = {c: i for i, c in enumerate(_ALNUM)}
_RIC_CHECK = "10X98765432"
_LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")
_PROVINCES = frozenset(f"{p:02d}" for p in numbers.PROVINCE_CODES)
_NATIONS = frozenset(numbers.NATIONS)  # GB/T 3304: 01-56, 97, 98
_LATIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz /.-")
_CONTROL = frozenset(chr(c) for c in range(32)) | {"\x7f"}


def _precise(fn: Callable[[], Any], field: str, fallback: str) -> Reject:
    """The precise reason from a codec validator, or *fallback* when it does not object."""
    try:
        fn()
    except DataError as exc:
        return Reject(field, exc.reason)
    return Reject(field, fallback)


def _region(value: str, field: str) -> None:
    if len(value) != 6 or not value.isdigit() or not value.isascii() or value[:2] not in _PROVINCES:
        raise _precise(
            lambda: numbers.check_region(value, field), field, "must be a 6-digit region code"
        )


#: The largest photo file read, in bytes. The photo specification of the social-security card
#: (中华人民共和国社会保障卡制证用数字相片技术要求, section 4.1, the same as GA 461-2004 for the
#: resident identity card: 358 x 441 pixels, 350 dpi, 24-bit RGB, JPEG with quality factor 70)
#: gives 14-40 KB as the usual file size ("一般相片的文件大小为14K~40K"; quoted e.g. by
#: https://rsc.sdws.edu.cn/2019/0416/c253a1938/page.htm). The limit is 2.5 times that maximum,
#: room for a less compressed encoding, and keeps a hostile path (a 1 GiB file) from being read.
PHOTO_MAX_BYTES = 100 * 1024

#: A profile's ``photo_spec``: the specification its photos must meet (``none``: any whole JPEG).
PHOTO_SPECS: Final[dict[str, PhotoSpec | None]] = {"card": CARD_PHOTO, "none": None}

#: Photos remembered per worker (path -> verdict), and how many new photos of a chunk are
#: opened and read ahead together (:func:`read_photos`).
_PHOTO_CACHE = 100_000
_PHOTO_READAHEAD = 64

_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _too_big(size: int) -> str:
    return (
        f"is {size:,} bytes, over the {PHOTO_MAX_BYTES:,}-byte limit for a photo "
        "(the specification's photo is a 358 x 441 JPEG of 14-40 KB)"
    )


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory, not a JPEG file"
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file"


class _OutOfDescriptors(Exception):
    """The process has no file descriptor left (EMFILE, ENFILE): not the photo's fault."""


def _open_photo(path: str) -> tuple[int, os.stat_result] | str:
    """An open descriptor of the photo at *path* and its status, or the reason it cannot be
    used (see :func:`read_photo`); :class:`_OutOfDescriptors` when the process has none left."""
    try:
        before = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "file not found"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    except ValueError:
        return "is not a valid file path"
    if not stat.S_ISREG(before.st_mode):
        return _not_regular(before.st_mode)
    if before.st_size > PHOTO_MAX_BYTES:
        return _too_big(before.st_size)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise _OutOfDescriptors(exc.strerror) from exc
        return f"cannot be read ({exc.strerror})"
    try:
        now = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(now.st_mode):
        os.close(fd)
        return _not_regular(now.st_mode)
    return fd, now


def _read_open(fd: int, now: os.stat_result) -> bytes | str:
    """The bytes of the open photo *fd* (closed here), or the reason it cannot be used."""
    try:
        # ask for the size fstat gave plus one byte: a read that comes back short at or past
        # that size is the end of the file (the usual case: one system call, and no buffer of
        # the largest size); a file that grew since is read on, up to one byte over the limit
        expected = min(now.st_size, PHOTO_MAX_BYTES)
        parts: list[bytes] = []
        size = 0
        while size <= PHOTO_MAX_BYTES:
            ask = expected + 1 - size if size <= expected else PHOTO_MAX_BYTES + 1 - size
            got = os.read(fd, ask)
            if not got:
                break
            parts.append(got)
            size += len(got)
            if len(got) < ask and size >= expected:
                break
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    if size > PHOTO_MAX_BYTES:
        return _too_big(max(size, now.st_size))
    return b"".join(parts)


def read_photo(path: str) -> bytes | str:
    """The bytes of the photo at *path*, or the reason it cannot be used. Only a regular file
    (a symbolic link is followed to one) of at most :data:`PHOTO_MAX_BYTES` is read: a FIFO, a
    device (``/dev/zero``) or a socket is refused before it is opened, and the open itself
    never waits (``O_NONBLOCK``) in case the path is swapped for one in between."""
    try:
        opened = _open_photo(path)
    except _OutOfDescriptors as exc:
        return f"cannot be read ({exc})"
    return opened if isinstance(opened, str) else _read_open(*opened)


def read_photos(paths: Sequence[str]) -> Iterator[bytes | str]:
    """:func:`read_photo` of each of *paths*, in order, :data:`_PHOTO_READAHEAD` files at a
    time: all of them opened and the kernel asked to read each ahead
    (``POSIX_FADV_WILLNEED``, which does not wait), then each read. Photos not in the page
    cache then arrive together instead of one disk wait after another, in one thread: 3,000
    distinct photos just off the disk (caches dropped) took ~35 µs each against ~130 one by one
    and ~80-107 µs in four threads, which also cost 2-3 times the CPU of one thread when the
    photos are in the page cache (docs/prep.md, "Photos"). A process short of file descriptors
    opens fewer at a time (never a photo refused for want of a descriptor of ours)."""
    start = 0
    while start < len(paths):
        opened: list[tuple[int, os.stat_result] | str | bytes] = []
        try:
            for path in paths[start : start + _PHOTO_READAHEAD]:
                try:
                    opened.append(_open_photo(path))
                except _OutOfDescriptors:
                    if not opened:  # none of ours open: the process is out of descriptors
                        opened.append(read_photo(path))
                    break  # read the ones open, then go on from this photo
            start += len(opened)
            for got in opened:
                if not isinstance(got, (str, bytes)):
                    with contextlib.suppress(OSError):
                        os.posix_fadvise(got[0], 0, 0, os.POSIX_FADV_WILLNEED)
            for k, got in enumerate(opened):
                opened[k] = ""  # handed over: _read_open closes it
                yield got if isinstance(got, (str, bytes)) else _read_open(*got)
        finally:
            for got in opened:  # a reader that stopped early: close what it did not read
                if not isinstance(got, (str, bytes)):
                    os.close(got[0])


def check_jpeg(data: bytes, spec: PhotoSpec | None = CARD_PHOTO) -> str:
    """The photo rule on a photo's bytes: "" when good, else the reason, starting with the rule
    that failed (``format``, ``pixel size``, ``colour``, ``file size``). With a ``spec`` the
    rule is :func:`cardperso.codec.photo.check_photo` (the card photo specification); with
    ``None`` only the format (a JPEG with a frame header). Either way a JPEG must be whole: its
    frame has a size and the file ends with EOI."""
    try:
        info = frame(data)
        if not info.width or not info.height:
            return "format: the JPEG has zero width or height"
        if not data.endswith(b"\xff\xd9") and data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
            return "format: the JPEG is truncated (no EOI marker)"
        if spec is not None:
            check_frame(info, spec)  # the rest of check_photo's rules, the frame read once
    except DataError as exc:
        return exc.reason
    return ""


class Validator:
    """Checks records for one profile; see the module docstring."""

    def __init__(
        self,
        profile: Profile,
        base_dir: str | os.PathLike[str] = ".",
        *,
        photo_spec: PhotoSpec | Literal["profile"] | None = "profile",
    ) -> None:
        self.profile = profile
        #: The photo rule: the profile's (``photo_spec: card`` is the card photo specification,
        #: ``none`` only a whole JPEG) unless the caller names one.
        self.photo_spec = PHOTO_SPECS[profile.photo_spec] if photo_spec == "profile" else photo_spec
        self.base_dir = Path(base_dir)
        self.pboc = profile.pboc
        required = {"ssn", "name", "gender", "nation", "birth_date", "birth_place", "region"}
        required |= {"card_no", "issue_date", "expiry_date"}
        if profile.photo == "required":
            required.add("photo")
        if profile.pboc is not None:
            required |= PBOC_FIELDS
        if profile.pin.source == "input":
            required.add("pin")
        #: Fields a record must have (non-empty).
        self.required = frozenset(required)
        #: Fields a record may have.
        self.allowed = frozenset(required | OPTIONAL_FIELDS | {"photo"} | PBOC_FIELDS)
        self._required_order = tuple(sorted(self.required))
        cid = profile.ssse.card_id
        self._cid_tail = card_id_tail(cid.serial_placeholder, cid.tail)
        self._cid_prefix = cid.prefix
        self._photo_cache: dict[str, str] = {}
        self._pin_len = profile.pin.length
        self._today = datetime.date.today().toordinal()

    # -- pieces ------------------------------------------------------------------------------

    def _ssn(self, ssn: str) -> None:
        # ISO 7064 MOD 11-2 weights are 2^(18-i) mod 11, and 13 = 2 (mod 11): reading the
        # 17 digits in base 13 gives half the weighted sum, modulo 11.
        if (
            len(ssn) == 18
            and ssn.isascii()
            and ssn[:17].isdigit()
            and _RIC_CHECK[2 * int(ssn[:17], 13) % 11] == ssn[17]
            and ssn[:2] in _PROVINCES
            and _DATE_CACHE.get(ssn[6:14], 0) != 0
        ):
            return
        raise _precise(
            lambda: numbers.check_resident_id(ssn, "ssn"), "ssn", "is not a valid identity number"
        )

    def _card_no(self, card_no: str) -> None:
        if (
            len(card_no) == 9
            and card_no.isascii()
            and (card_no.isdigit() or (card_no.isalnum() and card_no.isupper()))
        ):
            try:
                total = sum(map(int.__mul__, _CARD_W, map(_CARD_VAL.__getitem__, card_no[:8])))
            except KeyError:
                total = -1
            if total >= 0:
                r = 11 - total % 11
                check = "X" if r == 10 else "0" if r == 11 else str(r)
                if check == card_no[8]:
                    return
        raise _precise(
            lambda: numbers.check_card_number(card_no, "card_no"),
            "card_no",
            "is not a valid card number",
        )

    def _pan(self, pan: str) -> None:
        if 16 <= len(pan) <= 19 and pan.isascii() and pan.isdigit():
            digits = pan[-1::-2] + pan[-2::-2].translate(_LUHN_DOUBLE)
            total = sum(digits.encode()) - 48 * len(digits)
            if total % 10 == 0:
                return
        raise _precise(lambda: numbers.check_pan(pan, field="pan"), "pan", "is not a valid PAN")

    def _photo_path(self, rel: str) -> str:
        return rel if os.path.isabs(rel) else os.path.join(self.base_dir, rel)

    def photo_verdicts(self, paths: Collection[str]) -> dict[str, str]:
        """The verdict on each photo path of a chunk ("" when good), from the per-path cache;
        photos not seen yet are read together with the kernel reading ahead
        (:func:`read_photos`), so a chunk of distinct photos does not wait on one disk read
        at a time."""
        cache = self._photo_cache
        new = [p for p in paths if p not in cache]
        spec = self.photo_spec
        found = {
            p: data if isinstance(data, str) else check_jpeg(data, spec)
            for p, data in zip(new, read_photos([self._photo_path(p) for p in new]), strict=True)
        }
        if len(cache) + len(found) <= _PHOTO_CACHE:
            cache.update(found)
        return {p: cache[p] if p in cache else found[p] for p in paths}

    def _photo(self, rel: str) -> None:
        got = self.photo_verdicts((rel,))[rel]
        if got:
            raise Reject("photo", got)

    def _amount(self, v: dict[str, Any], field: str, default: int) -> int:
        s = v.get(field) or ""
        if not s:
            return default
        if not (s.isascii() and s.isdigit()) or len(s) > 12:
            raise Reject(field, "must be a whole number of fen (0-999999999999)")
        return int(s)

    # -- the check ---------------------------------------------------------------------------

    def check(self, v: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalize one record in place (see the module docstring)."""
        if not all(map(v.get, self._required_order)):
            for f in self._required_order:
                if not v.get(f):
                    reason = "required field is empty" if f in v else "required field is missing"
                    raise Reject(f, reason)
        ssn = v["ssn"]
        # dates first: the identity number's birth date uses the same cache
        birth = date_ordinal(v["birth_date"], "birth_date")
        if birth > self._today:
            raise Reject("birth_date", "is in the future")
        if len(ssn) == 18:
            s6 = ssn[6:14]
            if s6 not in _DATE_CACHE and s6.isdigit():
                with contextlib.suppress(Reject):
                    date_ordinal(s6, "ssn")
        self._ssn(ssn)
        if ssn[6:14] != v["birth_date"]:
            raise Reject("birth_date", "does not match the birth date in ssn")
        gender = v["gender"]
        if gender != "1" and gender != "2":
            raise Reject("gender", "must be 1 (male) or 2 (female)")
        if (ord(ssn[16]) & 1) != (gender == "1"):
            raise Reject("gender", "does not match the gender digit of ssn (odd = male)")
        if v["nation"] not in _NATIONS:
            raise Reject("nation", "must be a GB 3304 ethnic-group code (01-56, 97, 98)")
        _region(v["birth_place"], "birth_place")
        _region(v["region"], "region")
        self._card_no(v["card_no"])
        issue = date_ordinal(v["issue_date"], "issue_date")
        expiry = date_ordinal(v["expiry_date"], "expiry_date")
        if expiry <= issue:
            raise Reject("expiry_date", "must be after issue_date")
        if birth > issue:
            raise Reject("birth_date", "is after issue_date")
        accepted = v.get("accepted_date")
        if accepted and date_ordinal(accepted, "accepted_date") > issue:
            raise Reject("accepted_date", "is after issue_date")
        app_type = v.get("application_type")
        if app_type and app_type != "batch" and app_type != "sporadic":
            raise Reject("application_type", "must be batch or sporadic")
        # name: GBK, within 09 (30 bytes) + 4E (20 bytes)
        name = v["name"]
        try:
            raw = name.encode("gbk")
        except UnicodeEncodeError as exc:
            ch = name[exc.start]
            raise Reject(
                "name",
                f"character at position {exc.start} (U+{ord(ch):04X}) cannot be encoded in GBK",
            ) from None
        if not _CONTROL.isdisjoint(name):
            raise Reject("name", "contains a control character")
        if '"' in name:
            raise Reject("name", 'contains a double quote (")')
        if name != name.strip():
            raise Reject("name", "has leading or trailing spaces")
        if len(raw) <= 30:
            v["name_head"], v["name_ext"] = raw, b""
        else:
            try:
                v["name_head"], v["name_ext"] = split_gbk(name, 30, 20, "name")
            except DataError:
                raise Reject(
                    "name", f"is {len(raw)} bytes in GBK, max 50 (30 name + 20 extension)"
                ) from None
        latin = v.get("name_latin")
        if latin and (not 2 <= len(latin) <= 26 or not _LATIN.issuperset(latin)):
            raise Reject("name_latin", "must be 2-26 Latin letters, spaces, '/', '.' or '-'")
        code = v.get("person_code")
        if code:
            if len(code) != 12 or not _ALNUM_SET.issuperset(code):
                raise Reject("person_code", "must be 12 characters 0-9 or A-Z")
        else:
            v["person_code"] = "000000000000"
        photo = v.get("photo")
        if photo and self.profile.photo != "absent":
            self._photo(photo)
        pin = v.get("pin")
        if pin and (len(pin) != self._pin_len or not pin.isdigit() or not pin.isascii()):
            raise Reject("pin", f"must be {self._pin_len} digits")
        if self.profile.pin.source == "seeded":
            v["pin"] = ""
        if self.pboc is not None:
            pboc = self.pboc
            if not (v["bank_code"].isdigit() and 3 <= len(v["bank_code"]) <= 12):
                raise Reject("bank_code", "must be 3-12 digits")
            self._pan(v["pan"])
            psn = v["pan_seq"]
            if len(psn) != 2 or not psn.isdigit():
                raise Reject("pan_seq", "must be 2 digits")
            ec = pboc.ec
            limit = self._amount(v, "ec_limit", ec.default_limit)
            balance = self._amount(v, "ec_balance", ec.default_balance)
            single = self._amount(v, "ec_single_limit", ec.default_single_limit)
            reset = self._amount(v, "ec_reset_threshold", ec.default_reset_threshold)
            if limit > ec.max_balance_limit:
                raise Reject(
                    "ec_limit", f"exceeds the profile maximum of {ec.max_balance_limit} fen"
                )
            if balance > limit:
                raise Reject("ec_balance", "exceeds ec_limit")
            if single > limit:
                raise Reject("ec_single_limit", "exceeds ec_limit")
            if single > ec.max_single_limit:
                raise Reject(
                    "ec_single_limit", f"exceeds the profile maximum of {ec.max_single_limit} fen"
                )
            if reset > limit:
                raise Reject("ec_reset_threshold", "exceeds ec_limit")
            if reset > ec.max_reset_threshold:
                raise Reject(
                    "ec_reset_threshold",
                    f"exceeds the profile maximum of {ec.max_reset_threshold} fen",
                )
            v["ec"] = (balance, limit, single, reset)
            v["expiry_yymm"] = v["expiry_date"][2:6]
        # card identification code: region BCD(3) ‖ prefix(5) ‖ tail(8) (codec.fields.card_id_tail)
        v["card_id"] = bytes.fromhex(v["region"]) + self._cid_prefix + self._cid_tail
        return v
