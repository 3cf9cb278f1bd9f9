"""The one generic layout test: every registered layout's vectors, plus robustness properties.

Vectors live beside each layout (with their sources named there); this module only walks
:data:`cardperso.layouts.LAYOUTS` after importing every layout module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.errors import DecodeError, UsageError
from cardperso.layouts import Layout, all_layouts

REGISTRY = all_layouts()
NAMES = sorted(REGISTRY)


def check_vectors(layout: Layout[Any]) -> None:
    """decode(bytes) == model, encode(model) == bytes and both round trips, for every vector."""
    assert layout.vectors, f"layout {layout.name} has no vectors"
    assert layout.spec, f"layout {layout.name} names no specification clause"
    for model, data in layout.vectors:
        assert isinstance(model, layout.model)
        assert layout.decode(data) == model
        assert layout.encode(model) == data
        assert layout.decode(layout.encode(model)) == model
        assert layout.encode(layout.decode(data)) == data


def test_registry_is_not_empty() -> None:
    assert {"gp.cplc", "gp.scp02_initialize_update_response"} <= set(REGISTRY)


@pytest.mark.parametrize("name", NAMES)
def test_layout_vectors(name: str) -> None:
    check_vectors(REGISTRY[name])


def test_a_layout_without_vectors_fails() -> None:
    @dataclass(frozen=True, slots=True)
    class One:
        x: int

    bare = Layout("test.bare", "none", cs.Struct("x" / cs.Int8ub), One, register=False)
    with pytest.raises(AssertionError, match="no vectors"):
        check_vectors(bare)


def test_model_must_be_a_frozen_slotted_dataclass() -> None:
    @dataclass
    class Loose:
        x: int

    with pytest.raises(UsageError, match=r"model must be a frozen, slotted dataclass"):
        Layout("test.loose", "none", cs.Struct("x" / cs.Int8ub), Loose, register=False)


def test_a_name_registers_once() -> None:
    existing = REGISTRY["gp.cplc"]
    with pytest.raises(UsageError, match=r"layout 'gp\.cplc' is already registered"):
        Layout("gp.cplc", existing.spec, existing.struct, existing.model)


def test_every_model_is_frozen_and_slotted() -> None:
    for layout in REGISTRY.values():
        model, _ = layout.vectors[0]
        assert not hasattr(model, "__dict__"), layout.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(model, dataclasses.fields(model)[0].name, None)


@pytest.mark.parametrize("name", NAMES)
def test_trailing_byte_is_a_decode_error(name: str) -> None:
    layout = REGISTRY[name]
    for _, data in layout.vectors:
        with pytest.raises(DecodeError) as info:
            layout.decode(data + b"\x00")
        assert info.value.offset is not None


@pytest.mark.parametrize("name", NAMES)
def test_truncation_is_a_decode_error(name: str) -> None:
    layout = REGISTRY[name]
    for _, data in layout.vectors:
        for cut in range(len(data)):
            try:
                model = layout.decode(data[:cut])
            except DecodeError:
                continue
            # A shorter value may be valid on its own (an optional field); then it must
            # still round-trip.
            assert layout.encode(model) == data[:cut]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=128))
def test_random_bytes_decode_or_raise_decode_error(name: str, data: bytes) -> None:
    layout = REGISTRY[name]
    try:
        model = layout.decode(data)
    except DecodeError:
        return
    assert isinstance(model, layout.model)
    assert layout.decode(layout.encode(model)) == model


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mutated_vectors_decode_or_raise_decode_error(name: str, data: st.DataObject) -> None:
    layout = REGISTRY[name]
    _, raw = data.draw(st.sampled_from(layout.vectors))
    pos = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = raw[:pos] + bytes([value]) + raw[pos + 1 :]
    try:
        model = layout.decode(mutated)
    except DecodeError:
        return
    assert layout.decode(layout.encode(model)) == model
