"""Messages from the libraries under a fit that only alarm or distract a notebook's reader."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from scanpy import Verbosity, settings

#: Lightning's loggers. At every fit they log, at info level: the devices found ("GPU available: …",
#: "TPU available: …"), a tip to install a cloud logger, "`Trainer.fit` stopped: …", and "Seed set to
#: …" when scvi-tools' seed is set.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
#: The logger of Lightning's ``rank_zero_info``, which logs the tip.
LIGHTNING_RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"


def _not_a_tip(record: logging.LogRecord) -> bool:
    # an advertisement for a cloud logger at every fit, whatever the verbosity
    return "litlogger" not in record.getMessage()


@contextmanager
def lightning_info_as_scanpy() -> Iterator[None]:
    """Within this block, Lightning logs info lines only when scanpy's verbosity is info or more.

    scanpy's tools print nothing but warnings at its default verbosity; BGFormer's two fits would
    otherwise add eight lines of Lightning's. ``sc.settings.verbosity = "info"`` brings them back,
    except Lightning's tip to install a cloud logger, never shown. Lightning's warnings always show.
    Levels and filters are restored on leaving.
    """
    rank_zero = logging.getLogger(LIGHTNING_RANK_ZERO_LOGGER)
    rank_zero.addFilter(_not_a_tip)
    loggers = [] if settings.verbosity >= Verbosity.info else [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        rank_zero.removeFilter(_not_a_tip)


@contextmanager
def quiet_fit() -> Iterator[None]:
    """Within this block, Lightning's fits run without torch's ``LeafSpec`` deprecation notice.

    Lightning 2.6 flattens each step's outputs with ``torch.utils._pytree.LeafSpec``, which torch
    2.10 and later deprecate with a ``FutureWarning`` that a notebook shows at every fit, and
    BGFormer fits twice. It concerns Lightning's code, not the user's; only that message is ignored,
    and the filters are restored on leaving the block. Lightning's info lines follow scanpy's
    verbosity (:func:`lightning_info_as_scanpy`).
    """
    with warnings.catch_warnings(), lightning_info_as_scanpy():
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
        )
        yield


#: scvi-tools' logger: at every load it logs "File …/model.pt already downloaded" at info level.
SCVI_LOGGER = "scvi"


@contextmanager
def quiet_scvi() -> Iterator[None]:
    """Within this block, scvi-tools logs info lines only when scanpy's verbosity is info or more."""
    logger = logging.getLogger(SCVI_LOGGER)
    level = logger.level
    if settings.verbosity < Verbosity.info:
        logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
