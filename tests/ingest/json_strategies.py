"""Hypothesis strategies for JSON as senders make it, shared by the decompression and record
tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Any JSON-ish value, including what orjson cannot write (huge integers, NaN).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

# JSON as senders make it: values orjson can write (64-bit integers, finite floats).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_docs = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
json_records = st.dictionaries(
    st.text(max_size=10), json_scalars | st.lists(json_scalars, max_size=3), max_size=4
)
