from hypothesis import given
from hypothesis import strategies as st

from tokenshift.evaluate.windows import document_windows


@given(n=st.integers(0, 300), context=st.integers(1, 40), data=st.data())
def test_every_token_scored_exactly_once_within_context(n, context, data):
    stride = data.draw(st.integers(1, context))
    ids = list(range(100, 100 + n))
    windows = document_windows(7, ids, context=context, stride=stride)
    scored = []
    for w in windows:
        assert 1 <= len(w.inputs) <= context
        assert len(w.targets) == len(w.inputs)
        assert 1 <= w.scored <= len(w.inputs)
        sequence = [7, *ids]
        start = sequence.index(w.inputs[0]) if w.inputs[0] != 7 else 0
        assert w.targets == sequence[start + 1 : start + 1 + len(w.inputs)]  # targets are the next tokens
        scored.extend(w.targets[len(w.targets) - w.scored :])
    assert scored == ids  # each id once, in order; the conditioning token never scored


def test_docstring_examples():
    c, x = 0, [1, 2, 3, 4, 5, 6, 7]
    disjoint = document_windows(c, x, context=4)
    assert [(w.inputs, w.scored) for w in disjoint] == [([0, 1, 2, 3], 4), ([3, 4, 5, 6], 3)]
    overlapping = document_windows(c, x, context=4, stride=2)
    assert [(w.inputs, w.scored) for w in overlapping] == [([0, 1], 2), ([0, 1, 2, 3], 2), ([2, 3, 4, 5], 2), ([3, 4, 5, 6], 1)]


def test_bad_stride_and_context():
    import pytest

    with pytest.raises(ValueError, match="stride"):
        document_windows(0, [1, 2], context=4, stride=5)
    with pytest.raises(ValueError, match="context"):
        document_windows(0, [1, 2], context=0)
