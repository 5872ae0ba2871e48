"""Tests for the text forms of leaves: initializers and step grids."""

from __future__ import annotations

import pytest

from nas_mnist.architecture.spec import Initializer, SpecError
from nas_mnist.search_space.space import parse_initializer, round_to_step


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("he_normal", Initializer("he_normal")),
        ("truncated_normal(mean=0, stddev=0.01)",
         Initializer("truncated_normal", (("mean", 0.0), ("stddev", 0.01)))),
        (" constant( value = 0.1 ) ", Initializer("constant", (("value", 0.1),))),
    ],
)
def test_parse_initializer_reads_the_text_form(text, expected):
    assert parse_initializer(text) == expected
    assert parse_initializer(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "he normal", "constant(value)", "constant(value=abc)",
                                  "constant(value=inf)"])
def test_parse_initializer_rejects_malformed_text(text):
    with pytest.raises(SpecError, match="initializer"):
        parse_initializer(text)


def test_floats_on_a_step_grid_come_back_without_binary_noise():
    assert 0 + 6 * 0.05 != 0.3 and round_to_step(0 + 6 * 0.05, 0.0, 0.05) == 0.3
    assert round_to_step(0.7000000000000001, 0.0, 0.05) == 0.7
    assert round_to_step(0.35, 0.1, 0.05) == 0.35 and round_to_step(3.0, 1, 1) == 3.0
