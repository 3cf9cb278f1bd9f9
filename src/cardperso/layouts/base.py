"""The :class:`Layout` wrapper, its registry and the Construct building blocks layouts share.

How this works
--------------
A layout is a Construct value (the *struct*) declared once, next to the specification clause it
comes from, plus a frozen dataclass (the *model*) that is the only thing callers see:

* :meth:`Layout.decode` parses bytes with the struct and turns the resulting ``Container`` into
  the model. Every field of the model is looked up by name in the container; a field whose type
  is itself a dataclass, or a ``tuple[Dataclass, ...]``, is converted recursively. Bytes left
  over after the struct are an error (a layout describes the *whole* value).
* :meth:`Layout.encode` does the reverse: the model becomes a plain ``dict`` and the struct
  builds it.
* A layout whose model does not map one-to-one onto the struct (a name split over two records,
  say) passes ``to_model`` / ``from_model`` callables instead of the generic conversion.
* Construct errors never escape: parsing raises :class:`~cardperso.errors.DecodeError` naming the
  offset and the field, building raises :class:`~cardperso.errors.EncodingError` naming the
  field.

Every layout carries ``vectors`` (model, bytes) pairs. Layouts created with ``register=True``
(the default) go into :data:`LAYOUTS`; one generic test walks that registry and checks, for each
vector, ``decode(bytes) == model``, ``encode(model) == bytes`` and the round trip. A registered
layout without vectors fails that test.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import pkgutil
import re
import types
import typing
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import construct as cs

from cardperso.errors import DataError, DecodeError, EncodingError, UsageError

__all__ = [
    "LAYOUTS",
    "BerLength",
    "CodecField",
    "FieldError",
    "Layout",
    "all_layouts",
    "codec_error",
    "register_layout",
]

M = TypeVar("M")

#: Every registered layout by name. Filled as layout modules are imported; call
#: :func:`all_layouts` to import every module of :mod:`cardperso.layouts` first.
LAYOUTS: dict[str, Layout[Any]] = {}


def register_layout(layout: Layout[M]) -> Layout[M]:
    """Add *layout* to :data:`LAYOUTS`; a second layout with the same name is a usage error."""
    if layout.name in LAYOUTS and LAYOUTS[layout.name] is not layout:
        raise UsageError(f"layout {layout.name!r} is already registered")
    LAYOUTS[layout.name] = layout
    return layout


def all_layouts() -> dict[str, Layout[Any]]:
    """Import every submodule of :mod:`cardperso.layouts` and return the filled registry."""
    package = importlib.import_module("cardperso.layouts")
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    return dict(LAYOUTS)


# --- errors ------------------------------------------------------------------------------------


class FieldError(cs.ConstructError):  # type: ignore[misc]
    """A codec error inside a field, carried through Construct with its absolute offset.

    Raised by field constructs only; :class:`Layout` turns it into DecodeError / EncodingError.
    """

    def __init__(self, reason: str, *, path: str | None, offset: int | None, field: str | None):
        super().__init__(reason, path=path)
        self.reason = reason
        self.offset = offset
        self.field = field


def _field_of(path: str | None) -> str | None:
    """The innermost named field of a Construct error path such as ``(parsing) -> kvn``."""
    if not path:
        return None
    parts = [p.strip() for p in path.split("->")]
    names = [p for p in parts[1:] if p and not p.startswith("(")]
    return names[-1] if names else None


#: DecodeError puts "at offset N: " in front of its reason; the layout re-bases the offset.
_OFFSET_PREFIX = re.compile(r"^at offset \d+: ")


def codec_error(
    exc: DataError, *, path: str | None, start: int | None, field: str | None, prefix: str = ""
) -> FieldError:
    """Wrap a codec DataError raised for a field that starts at *start* in the parsed value.

    The codec's own offset (relative to the field) becomes absolute; *prefix* locates the
    field further (a record number, say).
    """
    inner = getattr(exc, "offset", None)
    offset = None if start is None else start + (inner if isinstance(inner, int) else 0)
    reason = prefix + _OFFSET_PREFIX.sub("", exc.reason)
    return FieldError(reason, path=path, offset=offset, field=exc.field or field)


def _reason(exc: cs.ConstructError) -> str:
    text = str(exc)
    if text.startswith("Error in path"):
        text = text.split("\n", 1)[1] if "\n" in text else text
    return text.strip() or type(exc).__name__


class _TrackingStream(io.BytesIO):
    """A BytesIO that remembers where the latest read started (the offset errors report)."""

    last_read: int = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.last_read = self.tell()
        return super().read(size)


# --- building blocks ---------------------------------------------------------------------------


class CodecField(cs.Construct):  # type: ignore[misc]
    """A fixed-length field whose value goes through a codec function pair.

    ``decode(raw, field) -> value`` and ``encode(value, field) -> raw`` are the functions of
    :mod:`cardperso.codec.fields` partially applied (length, charset). The field name given to
    them is the Construct name of the field, so codec errors name the right field; decode
    offsets are made absolute (from the start of the parsed value).
    """

    def __init__(
        self,
        length: int,
        decode: Callable[[bytes, str | None], Any],
        encode: Callable[[Any, str], bytes],
        *,
        kind: str = "field",
    ) -> None:
        super().__init__()
        self.length = length
        self._decode_fn = decode
        self._encode_fn = encode
        self.kind = kind

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        start = cs.stream_tell(stream, path)
        raw = cs.stream_read(stream, self.length, path)
        field = _field_of(path)
        try:
            return self._decode_fn(raw, field)
        except DataError as exc:
            raise codec_error(exc, path=path, start=start, field=field) from None

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        field = _field_of(path) or self.kind
        raw = self._encode_fn(obj, field)
        if len(raw) != self.length:
            raise EncodingError(
                f"encodes to {len(raw)} bytes, the layout has {self.length}", field=field
            )
        cs.stream_write(stream, raw, self.length, path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        return self.length


class _BerLength(cs.Construct):  # type: ignore[misc]
    """BER-TLV definite length (ISO 8825-1): ``00-7F``, ``81 xx``, ``82 xxxx``, ``83 xxxxxx``"""

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        first: int = cs.stream_read(stream, 1, path)[0]
        if first < 0x80:
            return first
        count = first & 0x7F
        if count == 0 or count > 3:
            raise cs.ExplicitError(f"unsupported BER length byte {first:02X}", path=path)
        return int.from_bytes(cs.stream_read(stream, count, path), "big")

    def _build(self, obj: int, stream: Any, context: Any, path: str) -> int:
        if obj < 0:
            raise cs.ExplicitError("negative length", path=path)
        if obj < 0x80:
            data = bytes([obj])
        else:
            size = (obj.bit_length() + 7) // 8
            if size > 3:
                raise cs.ExplicitError(f"length {obj} is too large", path=path)
            data = bytes([0x80 | size]) + obj.to_bytes(size, "big")
        cs.stream_write(stream, data, len(data), path)
        return obj


#: BER-TLV length field, usable as the length of ``Prefixed``.
BerLength: Any = _BerLength()


# --- model <-> container conversion --------------------------------------------------------------


def _to_value(tp: Any, value: Any) -> Any:
    """Convert one parsed value to the model's declared type *tp*."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _container_to_model(tp, value)
    if origin is tuple:
        return tuple(_to_value(typing.get_args(tp)[0], v) for v in value)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _to_value(args[0], value) if len(args) == 1 else value
    if tp is bytes:
        return bytes(value)
    return value


@functools.cache
def _field_types(model: Any) -> tuple[tuple[str, Any], ...]:
    """(name, resolved type) of every init field of a model (resolved once per model)."""
    hints = typing.get_type_hints(model)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(model) if f.init)


def _container_to_model(model: type[M], container: Mapping[str, Any]) -> M:
    types_ = _field_types(typing.cast(Hashable, model))
    kwargs = {name: _to_value(tp, container[name]) for name, tp in types_}
    return model(**kwargs)


def _from_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _model_to_dict(value)
    if isinstance(value, tuple):
        return [_from_value(v) for v in value]
    return value


def _model_to_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _from_value(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}


# --- the wrapper ----------------------------------------------------------------------------------


class Layout(Generic[M]):
    """A Construct struct behind a typed ``decode`` / ``encode`` pair over a frozen dataclass.

    *name* is the registry key, *spec* the specification clause the layout comes from, *struct*
    the Construct value, *model* the dataclass type. *vectors* are ``(model, bytes)`` pairs the
    generic test checks. ``to_model`` / ``from_model`` replace the generic field-by-field
    conversion when the model and the struct differ in shape.
    """

    __slots__ = ("_from_model", "_to_model", "model", "name", "spec", "struct", "vectors")

    def __init__(
        self,
        name: str,
        spec: str,
        struct: Any,
        model: type[M],
        *,
        vectors: Iterable[tuple[M, bytes]] = (),
        to_model: Callable[[Mapping[str, Any]], M] | None = None,
        from_model: Callable[[M], Mapping[str, Any]] | None = None,
        register: bool = True,
    ) -> None:
        if not (isinstance(model, type) and dataclasses.is_dataclass(model)):
            raise UsageError(f"layout {name!r}: model must be a dataclass type")
        params = getattr(model, "__dataclass_params__", None)
        if not (params is not None and params.frozen and "__slots__" in model.__dict__):
            raise UsageError(f"layout {name!r}: model must be a frozen, slotted dataclass")
        self.name = name
        self.spec = spec
        self.struct = struct
        self.model = model
        self.vectors: list[tuple[M, bytes]] = list(vectors)
        self._to_model = to_model
        self._from_model = from_model
        if register:
            register_layout(self)

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, model={self.model.__name__}, spec={self.spec!r})"

    @property
    def size(self) -> int | None:
        """Size in bytes when the layout is fixed-size, else ``None``."""
        try:
            return int(self.struct.sizeof())
        except cs.SizeofError:
            return None

    def _parse_container(self, data: bytes) -> Mapping[str, Any]:
        """Parse *data* with the struct (whole input, no trailing bytes); errors are DecodeError."""
        data = bytes(data)
        stream = _TrackingStream(data)
        try:
            obj = self.struct.parse_stream(stream)
        except FieldError as exc:
            raise DecodeError(exc.reason, offset=exc.offset, field=exc.field) from None
        except cs.ConstructError as exc:
            raise DecodeError(
                f"{self.name}: {_reason(exc)}", offset=stream.last_read, field=_field_of(exc.path)
            ) from None
        end = stream.tell()
        if end != len(data):
            raise DecodeError(
                f"{self.name}: {len(data) - end} unexpected trailing byte(s)", offset=end
            )
        return typing.cast(Mapping[str, Any], obj)

    def decode(self, data: bytes) -> M:
        """Parse *data* into the model; malformed input raises :class:`DecodeError`."""
        container = self._parse_container(data)
        if self._to_model is not None:
            return self._to_model(container)
        try:
            return _container_to_model(self.model, container)
        except DecodeError:
            raise
        except DataError as exc:  # a model's __post_init__ rejected a decoded value
            raise DecodeError(f"{self.name}: {exc.reason}", field=exc.field) from None
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{self.name}: {exc}") from None

    def encode(self, obj: M) -> bytes:
        """Build the bytes of *obj*; a value that does not fit raises :class:`EncodingError`."""
        if not isinstance(obj, self.model):
            raise UsageError(
                f"layout {self.name!r} encodes {self.model.__name__}, got {type(obj).__name__}"
            )
        values = self._from_model(obj) if self._from_model is not None else _model_to_dict(obj)
        try:
            return bytes(self.struct.build(values))
        except FieldError as exc:
            raise EncodingError(exc.reason, field=exc.field) from None
        except cs.ConstructError as exc:
            raise EncodingError(f"{self.name}: {_reason(exc)}", field=_field_of(exc.path)) from None
        except (TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise EncodingError(f"{self.name}: {exc}") from None
