"""The native-COS virtual chip: APDU bytes in, response bytes out, an FMCOS 2.0-style COS.

How this works
--------------
* The command set is FMCOS 2.0's as publicly documented (the FMCOS 2.0 user manual excerpts in
  /work/shared/reference/native-cos.md, N1-N11; formats as in klks/fmcos-python ``fmcos.py``):
  SELECT (FID or DF name), GET CHALLENGE, EXTERNAL / INTERNAL AUTHENTICATE, ERASE DF, CREATE
  FILE (DF, key file, binary and record EFs), WRITE KEY, READ / UPDATE BINARY and RECORD (CLA
  04: line protection), VERIFY and CHANGE PIN. The file system is
  :mod:`cardperso.card.native_fs`; secure messaging is :mod:`cardperso.protocol.fmcos` (the
  host driver uses the same code).
* Security state: one register (0-F) of the current DF, 0 after power-on and after every DF
  selection; a verified external-authentication key or PIN sets it to the key's follow-up
  state. A right ``XY`` is met when ``Y <= state <= X`` (F0 always, EF never).
* Error counters: high nibble the limit, low nibble the tries left; a failure answers 63Cx,
  none left 6983; a success restores the limit.
* A DF being created (``ended`` False) takes CREATE FILE and WRITE KEY without rights until
  END OF CREATION (``80 E0 00 01 00``) [inferred: FMCOS's "结束建立"; the exact command is not
  public, N11]. The MF of a blank chip is ended; its key file holds the card vendor's
  transport key (external authentication key 00, follow-up state 1) that CREATE FILE in the MF
  needs.
* This chip's policy: WRITE KEY only as ``84 D4`` with MAC and encryption (cipher text ‖ MAC)
  under the transport key, the MF's key 00; a plain ``80 D4`` answers 6982. Line-protected
  EF commands (CLA 04) use the current DF's line-protection key (type 36) or, when it has none,
  the transport key. A MAC that does not verify answers 6988 and changes nothing.
* Every APDU is one EEPROM transaction, as in :mod:`cardperso.card.vcard`: the image is
  committed when the command succeeded; the faults of :mod:`cardperso.card.faults` (mute,
  removal, tearing, wrong ATR, latency) act the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cardperso.card import pki_native
from cardperso.card.applet import (
    SW_AUTH_BLOCKED,
    SW_CHAINING_NOT_SUPPORTED,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS,
    SW_INS_NOT_SUPPORTED,
    SW_NOT_FOUND,
    SW_RECORD_NOT_FOUND,
    SW_REF_NOT_FOUND,
    SW_SECURITY,
    SW_SM_INCORRECT,
    SW_UNKNOWN,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    Command,
    Sw,
    need,
    parse_command,
)
from cardperso.card.faults import CardMute, CardRemoved, CardTorn, FaultPlan
from cardperso.card.native_fs import (
    EF_BINARY,
    EF_CYCLIC,
    EF_FIXED,
    EF_VARIABLE,
    MF_FID,
    MF_NAME,
    NativeDf,
    NativeEf,
    NativeKey,
    NativeState,
    dumps,
    loads,
    read_image,
    write_image,
)
from cardperso.card.vcard import fresh_serial
from cardperso.codec.apdu import CLA_CHAIN
from cardperso.crypto import primitives as cp
from cardperso.crypto import ssse as ssse_crypto
from cardperso.errors import DecodeError, MacMismatch, UsageError
from cardperso.protocol import fmcos

__all__ = ["NATIVE_TEST_KEY", "NativeCard", "build_native_atr"]

log = logging.getLogger(__name__)

#: The transport key of blank virtual native chips unless another is given ("NATIVE-COS-TEST1").
NATIVE_TEST_KEY = b"NATIVE-COS-TEST1"
SW_FILE_EXISTS = 0x6A89
SW_NAME_EXISTS = 0x6A8A
SW_NO_SPACE = 0x6A84
SW_NO_EF = 0x6986
_READ_ONLY_INS = frozenset({0xA4, 0xB0, 0xB2, 0x84})
_KEEP_SW1 = frozenset({0x90, 0x61, 0x62, 0x63})
_ALGO_CODE = {"SM4": 0x03, "3DES": 0x01}


def build_native_atr(serial: bytes, algorithm: str) -> bytes:
    """ATR: ``3B 8C 80 01`` and 12 historical bytes ``00 'CPFM' alg serial(4) 90 00`` (alg 03
    SM4, 01 3DES; category 00, status indicator last) and TCK."""
    hist = b"\x00CPFM" + bytes((_ALGO_CODE[algorithm],)) + serial + b"\x90\x00"
    body = bytes((0x80 | len(hist), 0x80, 0x01)) + hist
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


def _right_met(right: int, state: int) -> bool:
    return (right & 0x0F) <= state <= (right >> 4)


class NativeCard:
    """A native-COS chip (see the module docstring); the shape of a vpcd card."""

    def __init__(self, path: Path, state: NativeState, *, strict: bool = False) -> None:
        self.path = Path(path)
        self._nv = state
        self._committed = dumps(state, compact=True)
        self.faults = FaultPlan()
        #: Native faults: tear during the next command with this INS (E0 CREATE FILE, D4 WRITE
        #: KEY); flip one bit of the next line-protected command's MAC (a line fault).
        self.tear_on: int | None = None
        self.line_fault = False
        self.strict = strict
        self._powered = False
        self._drop_volatile()

    @classmethod
    def create_blank(
        cls,
        path: Path,
        *,
        serial: bytes | None = None,
        algorithm: str = "SM4",
        transport_key: bytes = NATIVE_TEST_KEY,
        tries: int = 5,
    ) -> NativeCard:
        """A blank chip image at ``path`` (never overwritten): the MF with its key file holding
        the card vendor's ``transport_key`` as external-authentication key 00."""
        path = Path(path)
        if algorithm not in _ALGO_CODE:
            raise UsageError("a native chip's algorithm is SM4 or 3DES")
        if len(transport_key) != 16 or not 1 <= tries <= 15:
            raise UsageError("the transport key is 16 bytes, its tries 1-15")
        serial = serial if serial is not None else fresh_serial(path.parent)
        if len(serial) != 4:
            raise UsageError("the chip serial is 4 bytes")
        if path.exists():
            raise UsageError(f"chip image {path} already exists")
        transport = NativeKey(0x00, 0x39, 0xF0, 0xF1, 0x11, tries << 4 | tries, transport_key)
        mf = NativeDf(
            MF_FID, MF_NAME, 0xF1, 0xF1, size=0x2000, ended=True, has_key_file=True,
            key_file_fid=0x0000, add_right=0xF1, key_capacity=0x200, keys=[transport],
        )  # fmt: skip
        state = NativeState(serial, algorithm, mf)
        write_image(path, dumps(state))
        return cls(path, state)

    @classmethod
    def load(cls, path: Path) -> NativeCard:
        return cls(Path(path), read_image(Path(path)))

    # -- inspection and power ----------------------------------------------------------------

    @property
    def state(self) -> NativeState:
        return self._nv

    @property
    def serial(self) -> bytes:
        return self._nv.serial

    @property
    def atr(self) -> bytes:
        if self.faults.wrong_atr is not None:
            return self.faults.wrong_atr
        return build_native_atr(self._nv.serial, self._nv.algorithm)

    @property
    def powered(self) -> bool:
        return self._powered

    def power_on(self) -> bytes:
        self.faults.before_power()
        self._drop_volatile()
        self._powered = True
        return self.atr

    def power_off(self) -> None:
        self._drop_volatile()
        self._powered = False

    def reset(self) -> bytes:
        return self.power_on()

    def _drop_volatile(self) -> None:
        self._path: list[int] = []  # FIDs from the MF to the current DF
        self._ef: int | None = None
        self._challenge: bytes | None = None
        self._security = 0
        self.pki_core: pki_native.PkiCore | None = None  # the PKI ADF's volatile state

    # -- the APDU path -------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU, return ``data || SW1 SW2`` (never raises for a bad APDU)."""
        try:
            self.faults.before_command()
        except CardRemoved:
            self.power_off()
            raise
        if not self._powered:
            raise CardMute("card is not powered")
        apdu = bytes(apdu)
        challenge, self._challenge = self._challenge, None  # good for the next command only
        try:
            response = self._dispatch(apdu, challenge)
        except Exception:
            if self.strict:
                raise
            log.exception("native chip: unexpected error, answering 6F00")
            self._restore()
            return SW_UNKNOWN.to_bytes(2, "big")
        if len(apdu) < 2 or apdu[1] not in _READ_ONLY_INS:
            if self.tear_on is not None and apdu[1] == self.tear_on:
                self.tear_on, self.faults.tear_next_write = None, True
            self._commit(response[-2] in _KEEP_SW1)
        return response

    def _commit(self, keep: bool) -> None:
        text = dumps(self._nv, compact=True)
        if text == self._committed:
            return
        if not keep:
            self._restore()
            return
        if self.faults.tear_next_write:
            self.faults.tear_next_write = False
            write_image(self.path, dumps(self._nv), tear=True)
            self._restore()
            self.power_off()
            raise CardTorn("power lost while writing non-volatile memory")
        write_image(self.path, dumps(self._nv))
        self._committed = text

    def _restore(self) -> None:
        self._nv = loads(self._committed)
        if self._df_or_none() is None:  # the current DF was made in the aborted transaction
            self._path, self._ef = [], None

    def _dispatch(self, apdu: bytes, challenge: bytes | None) -> bytes:
        try:
            cmd = parse_command(apdu)
            data = self._route(cmd, challenge)
        except Sw as sw:
            return sw.data + sw.sw.to_bytes(2, "big")
        return data + b"\x90\x00"

    def _route(self, cmd: Command, challenge: bytes | None) -> bytes:
        if cmd.cla & 0x03 or cmd.cla & 0x60:
            raise Sw(SW_CLA_NOT_SUPPORTED)
        in_pki = pki_native.in_pki_adf(self)
        if cmd.cla & CLA_CHAIN and not in_pki:  # ISO/IEC 7816-4 chaining: the PKI ADF only
            raise Sw(SW_CHAINING_NOT_SUPPORTED)
        got = pki_native.process(self, cmd, challenge) if in_pki else None
        if got is not None:  # the PKI ADF answered (b"" is an answer too)
            return got
        handlers = {
            (0x00, 0xA4): self._select,
            (0x00, 0x84): self._get_challenge,
            (0x00, 0x82): self._external_authenticate,
            (0x00, 0x88): self._internal_authenticate,
            (0x00, 0x20): self._verify,
            (0x80, 0x5E): self._change_pin,
            (0x80, 0x0E): self._erase_df,
            (0x80, 0xE0): self._create_file,
            (0x80, 0xD4): self._write_key,
            (0x00, 0xB0): self._read_binary,
            (0x00, 0xD6): self._update_binary,
            (0x00, 0xB2): self._read_record,
            (0x00, 0xDC): self._update_record,
        }
        handler = handlers.get((cmd.cla & 0x80, cmd.ins))
        if handler is None:
            raise Sw(SW_INS_NOT_SUPPORTED)
        if cmd.cla & 0x04 and cmd.ins not in (0xD4, 0xB0, 0xD6, 0xB2, 0xDC):
            raise Sw(0x6882)  # secure messaging not supported for this command
        return handler(cmd, challenge)

    # -- file system helpers -------------------------------------------------------------------

    def _df_or_none(self) -> NativeDf | None:
        df: NativeDf | None = self._nv.mf
        for fid in self._path:
            df = df.df(fid) if df is not None else None
        return df

    @property
    def _df(self) -> NativeDf:
        df = self._df_or_none()
        assert df is not None
        return df

    def _creating(self) -> bool:
        return not self._df.ended

    def _allowed(self, right: int) -> bool:
        return self._creating() or _right_met(right, self._security)

    def _key(self, key_id: int, key_type: int) -> NativeKey:
        key = self._df.key(key_id, key_type)
        need(key is not None, SW_REF_NOT_FOUND)
        assert key is not None
        return key

    def _line_key(self) -> bytes:
        """The current DF's line-protection key (type 36), else the transport key."""
        own = next((k for k in self._df.keys if k.key_type & 0x3F == 0x36), None)
        return (own or self._transport()).value

    def _transport(self) -> NativeKey:
        key = self._nv.mf.key(0x00, 0x39)
        need(key is not None, SW_REF_NOT_FOUND)
        assert key is not None
        return key

    def _unprotect(
        self, cmd: Command, challenge: bytes | None, key: bytes, *, encrypted: bool
    ) -> bytes:
        need(challenge is not None, SW_CONDITIONS)
        assert challenge is not None
        data = cmd.data
        if self.line_fault and data:
            self.line_fault, data = False, data[:-1] + bytes((data[-1] ^ 0x01,))
        try:
            return fmcos.unprotect(
                cmd.header, data, self._nv.algorithm, key, challenge, encrypted=encrypted
            )
        except MacMismatch:
            raise Sw(SW_SM_INCORRECT) from None
        except DecodeError:
            raise Sw(SW_WRONG_DATA) from None

    # -- SELECT, challenge, authentication -----------------------------------------------------

    def _select(self, cmd: Command, _c: bytes | None) -> bytes:
        need(cmd.p2 in (0x00, 0x0C), SW_WRONG_P1P2)
        if cmd.p1 == 0x04:
            path = _find_name(self._nv.mf, cmd.data, [])
            need(path is not None and len(cmd.data) >= 5, SW_NOT_FOUND)
            assert path is not None
            return self._enter(path)
        need(cmd.p1 == 0x00, SW_WRONG_P1P2)
        need(len(cmd.data) == 2, SW_WRONG_LENGTH)
        fid = int.from_bytes(cmd.data, "big")
        if fid == MF_FID:
            return self._enter([])
        if self._df.df(fid) is not None:
            return self._enter([*self._path, fid])
        ef = self._df.ef(fid)
        need(ef is not None, SW_NOT_FOUND)
        self._ef = fid
        return b""

    def _enter(self, path: list[int]) -> bytes:
        self._path, self._ef, self._security = path, None, 0
        df = self._df
        return b"\x6f" + bytes((len(df.name) + 2, 0x84, len(df.name))) + df.name

    def _get_challenge(self, cmd: Command, _c: bytes | None) -> bytes:
        need(cmd.p1 == 0 and cmd.p2 == 0, SW_WRONG_P1P2)
        need(not cmd.data and cmd.le in (4, 8), SW_WRONG_LENGTH)
        assert cmd.le is not None
        self._challenge = cp.random_bytes(cmd.le)
        return self._challenge

    def _count(self, key: NativeKey, ok: bool) -> None:
        """Count an authentication attempt; 63Cx (tries left) after a failure."""
        if ok:
            key.fourth = key.try_limit << 4 | key.try_limit
            self._security = key.third & 0x0F
            return
        key.fourth = key.fourth & 0xF0 | max(0, key.tries_left - 1)
        raise Sw(0x63C0 | key.tries_left)

    def _external_authenticate(self, cmd: Command, challenge: bytes | None) -> bytes:
        need(cmd.p1 == 0, SW_WRONG_P1P2)
        key = self._key(cmd.p2, 0x39)
        need(_right_met(key.use, self._security), SW_SECURITY)
        if key.tries_left == 0:
            raise Sw(SW_AUTH_BLOCKED)
        need(challenge is not None, SW_CONDITIONS)
        assert challenge is not None
        algorithm = self._nv.algorithm
        block = cp.BLOCK_SIZE[algorithm]
        need(len(cmd.data) == block, SW_WRONG_LENGTH)
        expected = cp.ecb_encrypt(algorithm, key.value, challenge.ljust(block, b"\x00"))
        self._count(key, cp.equal(expected, cmd.data))
        return b""

    def _internal_authenticate(self, cmd: Command, _c: bytes | None) -> bytes:
        """``00 88 00 id``: 16 bytes = factor ‖ random (the SSSE's form: the key diversified by
        the factor encrypts random ‖ 00×8); 8 bytes = the random encrypted under the key."""
        need(cmd.p1 == 0, SW_WRONG_P1P2)
        key = self._key(cmd.p2, 0x34)
        need(_right_met(key.use, self._security), SW_SECURITY)
        algorithm = self._nv.algorithm
        if len(cmd.data) == 16:
            session = ssse_crypto.diversify_one(key.value, algorithm, cmd.data[:8])
            return cp.ecb_encrypt(algorithm, session, cmd.data[8:] + bytes(8))
        need(len(cmd.data) == 8, SW_WRONG_LENGTH)
        return cp.ecb_encrypt(algorithm, key.value, cmd.data.ljust(cp.BLOCK_SIZE[algorithm], b"\0"))

    def _verify(self, cmd: Command, _c: bytes | None) -> bytes:
        need(cmd.p1 == 0, SW_WRONG_P1P2)
        key = self._key(cmd.p2, 0x3A)
        need(_right_met(key.use, self._security), SW_SECURITY)
        if key.tries_left == 0:
            raise Sw(SW_AUTH_BLOCKED)
        need(2 <= len(cmd.data) <= 8, SW_WRONG_LENGTH)
        self._count(key, cp.equal(cmd.data, key.value))
        return b""

    def _change_pin(self, cmd: Command, _c: bytes | None) -> bytes:
        """``80 5E 01 id``: old PIN ‖ FF ‖ new PIN."""
        need(cmd.p1 == 0x01, SW_WRONG_P1P2)
        key = self._key(cmd.p2, 0x3A)
        if key.tries_left == 0:
            raise Sw(SW_AUTH_BLOCKED)
        cut = cmd.data.find(b"\xff")
        need(cut >= 2 and 2 <= len(cmd.data) - cut - 1 <= 8, SW_WRONG_DATA)
        self._count(key, cp.equal(cmd.data[:cut], key.value))
        key.value = cmd.data[cut + 1 :]
        return b""

    # -- file management -----------------------------------------------------------------------

    def _erase_df(self, cmd: Command, _c: bytes | None) -> bytes:
        need(cmd.p1 == 0 and cmd.p2 == 0 and not cmd.data, SW_WRONG_P1P2)
        df = self._df
        need(self._allowed(df.erase_right), SW_SECURITY)
        df.efs, df.dfs, df.keys, df.has_key_file = [], [], [], False
        self._ef = None
        return b""

    def _create_file(self, cmd: Command, _c: bytes | None) -> bytes:
        df = self._df
        if not cmd.data and (cmd.p1, cmd.p2) == (0x00, 0x01):  # END OF CREATION
            df.ended = True
            return b""
        need(len(cmd.data) >= 7, SW_WRONG_LENGTH)
        need(self._allowed(df.create_right), SW_SECURITY)
        fid = cmd.p1 << 8 | cmd.p2
        need(fid not in (MF_FID, 0xFFFF), SW_WRONG_P1P2)
        need(fid != 0x0000 or cmd.data[0] == 0x3F, SW_WRONG_P1P2)  # 0000: key files only
        taken = {e.fid for e in df.efs} | {d.fid for d in df.dfs}
        if df.has_key_file:
            taken.add(df.key_file_fid)
        need(fid not in taken, SW_FILE_EXISTS)
        kind, size = cmd.data[0], int.from_bytes(cmd.data[1:3], "big")
        if kind == 0x38:
            name = cmd.data[8:]
            need(5 <= len(name) <= 16, SW_WRONG_DATA)
            need(_find_name(self._nv.mf, name, []) is None, SW_NAME_EXISTS)
            self._reserve(size)
            df.dfs.append(NativeDf(fid, name, cmd.data[3], cmd.data[4], cmd.data[5], size))
        elif kind == 0x3F:
            need(len(cmd.data) == 7, SW_WRONG_LENGTH)
            need(not df.has_key_file, SW_FILE_EXISTS)
            self._reserve(size)
            df.has_key_file, df.key_file_fid, df.add_right = True, fid, cmd.data[4]
            df.key_capacity = size
        else:
            need(len(cmd.data) == 7, SW_WRONG_LENGTH)
            need(df.has_key_file, SW_CONDITIONS)  # the key file is made first
            base = kind & 0x3F
            need(base in (EF_BINARY, EF_FIXED, EF_VARIABLE, EF_CYCLIC), SW_WRONG_DATA)
            ef = NativeEf(fid, kind, cmd.data[3], cmd.data[4], cmd.data[6], size)
            if base != EF_BINARY:
                ef.record_count, ef.record_length = cmd.data[1], cmd.data[2]
                need(ef.record_count > 0 and ef.record_length > 0, SW_WRONG_DATA)
                ef.records = [b""] * ef.record_count
                size = ef.record_count * (ef.record_length + 2)
            else:
                ef.data = bytes(size)
            self._reserve(size)
            df.efs.append(ef)
        return b""

    def _reserve(self, size: int) -> None:
        df = self._df
        used = sum(e.size if e.kind == EF_BINARY else e.record_count * (e.record_length + 2)
                   for e in df.efs) + sum(d.size for d in df.dfs) + (df.key_capacity if df.has_key_file else 0)  # fmt: skip
        need(used + size <= df.size, SW_NO_SPACE)

    def _write_key(self, cmd: Command, challenge: bytes | None) -> bytes:
        need(bool(cmd.cla & 0x04), SW_SECURITY)  # this chip takes keys enciphered and MAC'd only
        plain = self._unprotect(cmd, challenge, self._transport().value, encrypted=True)
        try:
            record = fmcos.decode_key(plain)
        except DecodeError:
            raise Sw(SW_WRONG_DATA) from None
        df = self._df
        need(df.has_key_file, SW_NOT_FOUND)
        if self._nv.algorithm == "SM4" and record.key_type & 0x3F != 0x3A:
            need(len(record.value) == 16, SW_WRONG_DATA)
        new = NativeKey(cmd.p2, record.key_type & 0x3F, record.use, record.change,
                        record.third, record.fourth, record.value)  # fmt: skip
        old = df.key(cmd.p2, new.key_type)
        if cmd.p1 == 0x01:
            need(old is None, SW_FILE_EXISTS)
            need(self._allowed(df.add_right), SW_SECURITY)
            used = sum(5 + len(k.value) for k in df.keys)
            need(used + 5 + len(new.value) <= df.key_capacity, SW_NO_SPACE)
            df.keys.append(new)
        else:
            need(old is not None and cmd.p1 == new.key_type, SW_REF_NOT_FOUND)
            assert old is not None
            need(self._allowed(old.change), SW_SECURITY)
            df.keys[df.keys.index(old)] = new
        return b""

    # -- binary and record files ---------------------------------------------------------------

    def _file(self, sfi: int) -> NativeEf:
        if sfi == 0:
            need(self._ef is not None, SW_NO_EF)
            assert self._ef is not None
            ef = self._df.ef(self._ef)
        else:
            ef = self._df.ef_by_sfi(sfi)
        need(ef is not None, SW_NOT_FOUND)
        assert ef is not None
        self._ef = ef.fid
        return ef

    def _write_data(self, cmd: Command, challenge: bytes | None, ef: NativeEf) -> bytes:
        need(self._allowed(ef.write_right), SW_SECURITY)
        if cmd.cla & 0x04:
            return self._unprotect(cmd, challenge, self._line_key(), encrypted=ef.needs_encryption)
        need(not ef.needs_mac, SW_SECURITY)
        return cmd.data

    def _read_answer(
        self, cmd: Command, challenge: bytes | None, ef: NativeEf, data: bytes
    ) -> bytes:
        need(self._allowed(ef.read_right), SW_SECURITY)
        if not cmd.cla & 0x04:
            return data
        key = self._line_key()
        self._unprotect(cmd, challenge, key, encrypted=False)
        assert challenge is not None
        return data + fmcos.line_mac(self._nv.algorithm, key, data, challenge)

    def _binary(self, cmd: Command) -> tuple[NativeEf, int]:
        if cmd.p1 & 0x80:
            ef, offset = self._file(cmd.p1 & 0x1F), cmd.p2
        else:
            ef, offset = self._file(0), cmd.p1 << 8 | cmd.p2
        need(ef.kind == EF_BINARY, 0x6981)
        need(offset <= ef.size, SW_WRONG_P1P2)
        return ef, offset

    def _read_binary(self, cmd: Command, challenge: bytes | None) -> bytes:
        ef, offset = self._binary(cmd)
        length = cmd.le if cmd.le else ef.size - offset
        need(offset + length <= ef.size, SW_WRONG_LENGTH)
        return self._read_answer(cmd, challenge, ef, ef.data[offset : offset + length])

    def _update_binary(self, cmd: Command, challenge: bytes | None) -> bytes:
        ef, offset = self._binary(cmd)
        data = self._write_data(cmd, challenge, ef)
        need(offset + len(data) <= ef.size, SW_WRONG_LENGTH)
        ef.data = ef.data[:offset] + data + ef.data[offset + len(data) :]
        return b""

    def _record(self, cmd: Command) -> tuple[NativeEf, int]:
        need(cmd.p2 & 0x07 == 0x04, SW_WRONG_P1P2)
        ef = self._file(cmd.p2 >> 3)
        need(ef.kind != EF_BINARY, 0x6981)
        need(1 <= cmd.p1 <= ef.record_count, SW_RECORD_NOT_FOUND)
        return ef, cmd.p1 - 1

    def _read_record(self, cmd: Command, challenge: bytes | None) -> bytes:
        ef, index = self._record(cmd)
        value = ef.records[index]
        need(self._allowed(ef.read_right), SW_SECURITY)
        need(bool(value), SW_RECORD_NOT_FOUND)
        return self._read_answer(cmd, challenge, ef, value)

    def _update_record(self, cmd: Command, challenge: bytes | None) -> bytes:
        ef, index = self._record(cmd)
        data = self._write_data(cmd, challenge, ef)
        if ef.kind == EF_VARIABLE:
            need(1 <= len(data) <= ef.record_length, SW_WRONG_LENGTH)
        else:
            need(len(data) == ef.record_length, SW_WRONG_LENGTH)
        ef.records[index] = data
        return b""


def _find_name(df: NativeDf, name: bytes, path: list[int]) -> list[int] | None:
    """The FID path of the DF whose name starts with ``name`` (depth first), or None."""
    if name and df.name.startswith(name):
        return path
    for child in df.dfs:
        found = _find_name(child, name, [*path, child.fid])
        if found is not None:
            return found
    return None
