import logging

import pytest
import scanpy as sc

from atlasclust._quiet import LIGHTNING_LOGGERS, LIGHTNING_RANK_ZERO_LOGGER, lightning_info_as_scanpy


@pytest.fixture
def loggers():
    """Lightning's loggers at the level Lightning gives them (conftest quietens them), restored after."""
    verbosity = sc.settings.verbosity
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield loggers
    sc.settings.verbosity = verbosity
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.parametrize(("level", "info_shown"), [("warning", False), ("info", True), ("debug", True)])
def test_lightning_info_follows_scanpy_verbosity_and_levels_come_back(loggers, level, info_shown):
    sc.settings.verbosity = level
    with pytest.raises(RuntimeError), lightning_info_as_scanpy():
        for logger in loggers:
            assert logger.isEnabledFor(logging.INFO) == info_shown
            assert logger.isEnabledFor(logging.WARNING)
        raise RuntimeError  # levels come back after a failed fit too
    assert [logger.level for logger in loggers] == [logging.INFO] * len(loggers)
    assert not logging.getLogger(LIGHTNING_RANK_ZERO_LOGGER).filters


def test_a_quieter_level_set_by_the_user_is_kept(loggers):
    sc.settings.verbosity = "warning"
    loggers[0].setLevel(logging.ERROR)
    with lightning_info_as_scanpy():
        assert not loggers[0].isEnabledFor(logging.WARNING)
    assert loggers[0].level == logging.ERROR


def test_the_cloud_logger_tip_is_dropped_at_any_verbosity(loggers):
    sc.settings.verbosity = "debug"
    rank_zero = logging.getLogger(LIGHTNING_RANK_ZERO_LOGGER)
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    loggers[0].addHandler(handler)
    try:
        with lightning_info_as_scanpy():
            rank_zero.info("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
            rank_zero.info("GPU available: False, used: False")
    finally:
        loggers[0].removeHandler(handler)
    assert seen == ["GPU available: False, used: False"]
