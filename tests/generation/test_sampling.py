import pytest

from generation.backends.base import InvalidSamplingParams, SamplingParams, truncate_at_stop


def test_defaults_and_round_trip():
    params = SamplingParams()
    assert params.to_dict() == {
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": None,
        "max_new_tokens": 256,
        "seed": None,
        "n": 1,
        "stop": [],
    }
    again = SamplingParams.from_dict(params.to_dict())
    assert again == params


def test_normalises_values():
    params = SamplingParams.from_dict({"temperature": "0.5", "top_k": 0, "stop": "END", "seed": 7.0}, n=3)
    assert params.temperature == 0.5
    assert params.top_k is None  # 0 means off
    assert params.stop == ("END",)
    assert params.seed == 7 and isinstance(params.seed, int)
    assert params.n == 3
    assert SamplingParams(temperature=0).greedy


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": 2**70}, "top_k"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 10**6}, "max_new_tokens"),
        ({"seed": -1}, "seed"),
        ({"n": 0}, "n"),
        ({"n": 65}, "n"),
        ({"n": True}, "n"),
        ({"stop": [""]}, "stop"),
        ({"stop": ["x"] * 9}, "stop"),
        ({"stop": [1]}, "stop"),
        ({"beam_width": 3}, "beam_width"),
    ],
)
def test_rejects_bad_values(values, field):
    with pytest.raises(InvalidSamplingParams) as info:
        SamplingParams.from_dict(values)
    assert info.value.field == field


def test_truncate_at_earliest_stop():
    assert truncate_at_stop("hello world. bye", ("bye", ".")) == ("hello world", True)
    assert truncate_at_stop("hello", ("x",)) == ("hello", False)
