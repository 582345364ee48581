"""Up-front config checks whose errors name the key, the value and the fix.

A check is a function ``check(owner, key, value)`` that raises ConfigError. Values
may be Tune search spaces: ``check_setting`` then checks every grid value, every
category and both ends of a numeric range, so a search is rejected before it starts.
"""

import numbers
from typing import Any, Callable, Iterable, List

from ray.tune.search.sample import Categorical, Domain, Float, Integer

Check = Callable[[str, str, Any], None]


class ConfigError(ValueError):
    """A config value is invalid; raised before any Ray worker starts."""


def fail(owner: str, key: str, value: Any, requirement: str) -> None:
    raise ConfigError(f"{owner}: {key}={value!r} is invalid; {key} {requirement}.")


def search_space_candidates(value: Any) -> List[Any]:
    """The concrete values to check for ``value`` (itself, unless it is a search space)."""
    if isinstance(value, dict) and set(value) == {"grid_search"}:
        return list(value["grid_search"])
    if isinstance(value, Categorical):
        return list(value.categories)
    if isinstance(value, Integer):
        return [value.lower, value.upper - 1]
    if isinstance(value, Float):
        return [value.lower, value.upper]
    if isinstance(value, Domain):  # sample_from and other custom domains
        return []
    return [value]


def check_setting(owner: str, key: str, value: Any, check: Check) -> None:
    for candidate in search_space_candidates(value):
        check(owner, key, candidate)


def is_search_space(value: Any) -> bool:
    return isinstance(value, Domain) or (isinstance(value, dict) and set(value) == {"grid_search"})


def choice(choices: Iterable[Any]) -> Check:
    choices = tuple(choices)

    def check(owner, key, value):
        if isinstance(value, bool) or value not in choices:
            fail(owner, key, value, f"must be one of {list(choices)}")
    return check


def boolean(owner: str, key: str, value: Any) -> None:
    if not isinstance(value, bool):
        fail(owner, key, value, "must be true or false")


def text(owner: str, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        fail(owner, key, value, "must be a non-empty string")


def optional(check: Check) -> Check:
    """None, or a value that passes ``check``."""
    def checked(owner, key, value):
        if value is not None:
            try:
                check(owner, key, value)
            except ConfigError as error:
                raise ConfigError(f"{error.args[0][:-1]} or null.") from None
    return checked


def integer(minimum: int, *, also: Iterable[str] = ()) -> Check:
    """An integer >= minimum, or one of the strings ``also``."""
    also = tuple(also)

    def check(owner, key, value):
        if isinstance(value, str) and value in also:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            fail(owner, key, value, f"must be an integer >= {minimum}"
                 + "".join(f" or {word!r}" for word in also))
    return check


def number(low: float = None, high: float = None, *, low_open: bool = False,
           high_open: bool = False, optional: bool = False) -> Check:
    """A real number in the interval given by low/high (ends open if asked); None if optional."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"

    def check(owner, key, value):
        if optional and value is None:
            return
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            fail(owner, key, value, f"must be a number in {interval}"
                 + (" or null" if optional else ""))
    return check
