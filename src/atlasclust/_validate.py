"""Checks of user arguments shared by the ``tl`` functions; errors name the problem and the fix."""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable, Iterable


def check_cluster_count(n_clusters: int | None, n_obs: int) -> None:
    """``n_clusters`` is ``None`` or an integer from 2 to the number of cells."""
    if n_clusters is None:
        return
    if not isinstance(n_clusters, numbers.Integral) or isinstance(n_clusters, bool):
        msg = f"n_clusters must be an integer or None, got {n_clusters!r}."
        raise TypeError(msg)
    if n_clusters < 2:
        msg = f"n_clusters={n_clusters} must be at least 2 (or None to find the number with Leiden)."
        raise ValueError(msg)
    if n_clusters > n_obs:
        msg = f"n_clusters={n_clusters} is larger than the number of cells ({n_obs})."
        raise ValueError(msg)


def as_int(value, name: str, *, minimum: int | None = None) -> int | None:
    """``value`` (``None``, or an integer of any kind, numpy's included) as a Python ``int``.

    Lightning and torch's data loaders accept only Python ``int`` for epochs and batch sizes, and
    arguments taken from numpy (``np.arange``, a sweep over a grid) are numpy integers. An integer
    below ``minimum`` raises a :class:`ValueError`.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be an integer, got {value!r}."
        raise TypeError(msg)
    if minimum is not None and value < minimum:
        msg = f"{name}={value} must be at least {minimum}."
        raise ValueError(msg)
    return int(value)


def check_choice(name: str, value, choices: tuple) -> None:
    """``value`` is one of ``choices``; the error names the argument and lists them."""
    if value not in choices:
        msg = f"{name}={value!r} must be one of {choices}."
        raise ValueError(msg)


def check_non_negative(**values) -> None:
    """Each keyword's value (a loss weight, a noise level) is a finite real number of at least 0."""
    _require(values, lambda value: value >= 0, "a finite number of at least 0")


def check_positive(**values) -> None:
    """Each keyword's value (a temperature, a Leiden resolution, a size) is a finite real number above 0."""
    _require(values, lambda value: value > 0, "a finite number above 0")


def check_fraction(**values) -> None:
    """Each keyword's value (a share of the epochs, of the cells) is a finite real number from 0 to 1."""
    _require(values, lambda value: 0 <= value <= 1, "a number from 0 to 1")


def _require(values: dict, holds, requirement: str) -> None:
    """Raise a ``ValueError`` naming the first value that is not a finite real number for which ``holds``."""
    for name, value in values.items():
        finite_real = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not finite_real or not holds(value):
            msg = f"{name}={value!r} must be {requirement}."
            raise ValueError(msg)


def keyword_names(*callables: Callable) -> set[str]:
    """Names of the keyword arguments the callables take (not ``self`` nor their ``*args``/``**kwargs``)."""
    names = set()
    for function in callables:
        for name, parameter in inspect.signature(function).parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                names.add(name)
    return names


def trainer_keywords() -> set[str]:
    """Arguments of scvi-tools' ``Trainer`` and of Lightning's, which it passes its ``**kwargs`` to."""
    from scvi.train import Trainer

    return keyword_names(*(cls.__init__ for cls in Trainer.__mro__ if "__init__" in vars(cls) and cls is not object))


def check_keywords(function: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """A :class:`TypeError` for the first of ``given`` not in ``accepted``, naming the closest accepted name.

    Without it, a misspelt option reaches Lightning's ``Trainer`` only once training starts.
    """
    accepted = sorted(set(accepted))
    for name in given:
        if name in accepted:
            continue
        close = difflib.get_close_matches(name, accepted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (see the function's docstring for what it accepts)."
        msg = f"{function}() got an unexpected keyword argument {name!r}{hint}"
        raise TypeError(msg)
