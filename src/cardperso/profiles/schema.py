"""A small schema checker for YAML documents that keeps line numbers.

How this works
--------------
:func:`load_yaml` composes the YAML text into PyYAML *nodes* (each node knows its start mark:
line and column) and walks them against a schema built from a few spec classes (:class:`Map`,
:class:`ListOf`, :class:`Str`, :class:`Int`, :class:`Hex`, :class:`Enum`, :class:`Bool`,
:class:`Any_`). The walk returns plain Python values; the first problem raises
:class:`~cardperso.errors.ProfileError` naming ``file:line``, the dotted field path and the
reason, e.g. ``profiles/x.yaml:42: field 'ssse.files[0].records[3].len': must be >= 1``.

Only safe YAML is accepted (the composer of ``yaml.SafeLoader``); anchors and aliases work,
custom tags do not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from cardperso.errors import ProfileError

__all__ = [
    "Any_",
    "Bool",
    "Enum",
    "Hex",
    "Int",
    "ListOf",
    "Map",
    "MapOf",
    "Spec",
    "Str",
    "check",
    "load_yaml",
]


class Spec:
    """Base of all schema specs: ``check(node, ctx, path)`` returns the plain value."""

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> Any:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - overridden
        return type(self).__name__.lower()


@dataclass
class _Ctx:
    filename: str

    def fail(self, node: yaml.Node | None, path: str, reason: str) -> ProfileError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        where = f"{self.filename}{line}"
        err = ProfileError(f"{where}: field {path or '(root)'!r}: {reason}")
        err.field = path or None
        err.filename = self.filename  # type: ignore[attr-defined]
        err.line = node.start_mark.line + 1 if node is not None else None  # type: ignore[attr-defined]
        return err


def _scalar(node: yaml.Node, ctx: _Ctx, path: str, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.fail(node, path, f"expected {what}, got a {_kind(node)}")
    return yaml.SafeLoader.construct_scalar(_LOADER, node), node.tag


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "scalar"


_LOADER = yaml.SafeLoader("")
_INT_TAG = "tag:yaml.org,2002:int"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass
class Str(Spec):
    """A string, optionally matching ``pattern`` (full match) and within a length range."""

    pattern: str | None = None
    min_len: int = 0
    max_len: int | None = None
    hint: str = ""

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> str:
        value, _tag = _scalar(node, ctx, path, "a string")
        text = str(value)
        if len(text) < self.min_len:
            raise ctx.fail(node, path, f"must be at least {self.min_len} characters")
        if self.max_len is not None and len(text) > self.max_len:
            raise ctx.fail(node, path, f"must be at most {self.max_len} characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise ctx.fail(node, path, f"{text!r} is not {self.hint or 'valid'}")
        return text

    def describe(self) -> str:
        return "string"


@dataclass
class Int(Spec):
    """An integer (decimal or 0x-hex) within ``[min, max]``."""

    min: int | None = None
    max: int | None = None

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> int:
        value, tag = _scalar(node, ctx, path, "an integer")
        if tag != _INT_TAG:
            raise ctx.fail(node, path, f"expected an integer, got {value!r}")
        assert isinstance(node, yaml.ScalarNode)
        if sum(ch.isalnum() for ch in str(node.value)) > MAX_INT_DIGITS:
            raise ctx.fail(node, path, f"integer has more than {MAX_INT_DIGITS} digits")
        number = int(yaml.SafeLoader.construct_yaml_int(_LOADER, node))
        if self.min is not None and number < self.min:
            raise ctx.fail(node, path, f"must be >= {self.min}")
        if self.max is not None and number > self.max:
            raise ctx.fail(node, path, f"must be <= {self.max}")
        return number


@dataclass
class Bool(Spec):
    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> bool:
        value, tag = _scalar(node, ctx, path, "true or false")
        if tag != _BOOL_TAG:
            raise ctx.fail(node, path, f"expected true or false, got {value!r}")
        assert isinstance(node, yaml.ScalarNode)
        return bool(yaml.SafeLoader.construct_yaml_bool(_LOADER, node))


@dataclass
class Hex(Spec):
    """Hex bytes (spaces allowed), ``length`` bytes exactly or within ``[min_len, max_len]``."""

    length: int | None = None
    min_len: int = 0
    max_len: int | None = None

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> bytes:
        value, tag = _scalar(node, ctx, path, "hex bytes")
        if tag not in (_STR_TAG, _INT_TAG):
            raise ctx.fail(node, path, f"expected hex bytes, got {value!r}")
        text = str(value).replace(" ", "")
        if len(text) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", text):
            raise ctx.fail(node, path, "expected an even number of hex digits (quote the value)")
        data = bytes.fromhex(text)
        if self.length is not None and len(data) != self.length:
            raise ctx.fail(node, path, f"must be exactly {self.length} bytes, got {len(data)}")
        if len(data) < self.min_len:
            raise ctx.fail(node, path, f"must be at least {self.min_len} bytes")
        if self.max_len is not None and len(data) > self.max_len:
            raise ctx.fail(node, path, f"must be at most {self.max_len} bytes")
        return data


@dataclass
class Enum(Spec):
    choices: tuple[str, ...]

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> str:
        value, _tag = _scalar(node, ctx, path, "one of " + ", ".join(self.choices))
        text = str(value)
        if text not in self.choices:
            raise ctx.fail(node, path, f"{text!r} is not one of {', '.join(self.choices)}")
        return text


@dataclass
class Any_(Spec):
    """Any scalar, returned as a string."""

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> str:
        value, _tag = _scalar(node, ctx, path, "a scalar")
        return str(value)


@dataclass
class ListOf(Spec):
    item: Spec
    min_len: int = 0
    max_len: int | None = None

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> list[Any]:
        if not isinstance(node, yaml.SequenceNode):
            raise ctx.fail(node, path, f"expected a list, got a {_kind(node)}")
        if len(node.value) < self.min_len:
            raise ctx.fail(node, path, f"needs at least {self.min_len} item(s)")
        if self.max_len is not None and len(node.value) > self.max_len:
            raise ctx.fail(node, path, f"has more than {self.max_len} items")
        return [self.item.check(n, ctx, f"{path}[{i}]") for i, n in enumerate(node.value)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _key(node: yaml.Node, ctx: _Ctx, path: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.fail(node, path, "mapping keys must be scalars")
    return str(node.value)


def _pairs(node: yaml.Node, ctx: _Ctx, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.fail(node, path, f"expected a mapping, got a {_kind(node)}")
    seen: dict[str, yaml.Node] = {}
    out = []
    for knode, vnode in node.value:
        key = _key(knode, ctx, path)
        if key in seen:
            raise ctx.fail(knode, _join(path, key), "duplicate key")
        seen[key] = knode
        out.append((key, knode, vnode))
    return out


@dataclass
class Map(Spec):
    """A mapping with known keys: ``fields`` name → spec; ``required`` keys must be present;
    ``defaults`` fill absent optional keys; unknown keys are errors (typos do not pass)."""

    fields: Mapping[str, Spec]
    required: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, knode, vnode in _pairs(node, ctx, path):
            spec = self.fields.get(key)
            if spec is None:
                known = ", ".join(sorted(self.fields))
                raise ctx.fail(knode, _join(path, key), f"unknown field (known: {known})")
            out[key] = spec.check(vnode, ctx, _join(path, key))
        for key in self.required:
            if key not in out:
                raise ctx.fail(node, _join(path, key), "required field is missing")
        for key, value in self.defaults.items():
            out.setdefault(key, value)
        return out


@dataclass
class MapOf(Spec):
    """A mapping whose keys match ``key_pattern`` and whose values all follow ``value``."""

    value: Spec
    key_pattern: str = r".+"
    key_hint: str = "a valid key"

    def check(self, node: yaml.Node, ctx: _Ctx, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, knode, vnode in _pairs(node, ctx, path):
            if not re.fullmatch(self.key_pattern, key):
                raise ctx.fail(knode, _join(path, key), f"key is not {self.key_hint}")
            out[key] = self.value.check(vnode, ctx, _join(path, key))
        return out


#: Limits on a profile document (hostile or broken files end in one ProfileError): its size,
#: how deep mappings and lists nest, how many nodes it has once aliases are expanded, and the
#: digits of an integer. The shipped profiles use a few kB, 8 levels and a few hundred nodes.
MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_INT_DIGITS = 30


class _LimitedLoader(yaml.SafeLoader):
    """The safe composer with a nesting limit (PyYAML's composer recurses per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node, filename: str) -> int:
    """Nodes in the document with every alias expanded; refuses recursive aliases and
    documents that expand past :data:`MAX_NODES` ("billion laughs")."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in busy:
            line = node.start_mark.line + 1
            raise ProfileError(f"{filename}:{line}: an alias refers to itself (recursive)")
        busy.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(n) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        busy.discard(key)
        if total > MAX_NODES:
            raise ProfileError(
                f"{filename}: the profile expands to more than {MAX_NODES} nodes (aliases)"
            )
        sizes[key] = total
        return total

    return size(root)


def load_yaml(text: str, filename: str) -> yaml.Node:
    """Compose YAML *text* into a node tree (safe loader); syntax errors name file and line.

    Limits (:data:`MAX_BYTES`, :data:`MAX_DEPTH`, :data:`MAX_NODES`) end a hostile document
    in one :class:`ProfileError`, never a traceback."""
    if len(text) > MAX_BYTES:
        raise ProfileError(f"{filename}: the profile is larger than {MAX_BYTES} bytes")
    loader: _LimitedLoader | None = None
    try:
        loader = _LimitedLoader(text)  # checks the characters
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"{filename}{line}: YAML syntax error: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:
        where = text.count("\n", 0, max(exc.position, 0)) + 1
        raise ProfileError(
            f"{filename}:{where}: character U+{exc.character:04X} is not allowed in a profile"
        ) from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{filename}: YAML error: {type(exc).__name__}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise ProfileError(f"{filename}: the file is empty")
    _expanded_size(node, filename)
    return node


def check(spec: Spec, node: yaml.Node, filename: str) -> Any:
    """Check *node* against *spec* and return the plain value (raises ProfileError)."""
    return spec.check(node, _Ctx(filename), "")


def fail_at(node: yaml.Node | None, filename: str, path: str, reason: str) -> ProfileError:
    """A ProfileError for a semantic check done after the schema pass."""
    return _Ctx(filename).fail(node, path, reason)


def find_node(root: yaml.Node, path: str) -> yaml.Node | None:
    """The node at a dotted path (``a.b[2].c``), for locating semantic errors; None if absent."""
    node: yaml.Node | None = root
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if node is None:
            return None
        if part.startswith("["):
            if not isinstance(node, yaml.SequenceNode):
                return None
            idx = int(part[1:-1])
            node = node.value[idx] if idx < len(node.value) else None
        else:
            if not isinstance(node, yaml.MappingNode):
                return None
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
    return node
