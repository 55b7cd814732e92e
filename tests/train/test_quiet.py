import logging

import pytest
import scanpy as sc

from atlasclust.train._quiet import LIGHTNING_LOGGERS, LIGHTNING_RANK_ZERO_LOGGER, lightning_info_as_scanpy


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


@pytest.mark.parametrize(("level", "info_shown"), [("warning", False), ("info", True)])
def test_scvi_info_follows_scanpy_verbosity_and_its_level_comes_back(level, info_shown):
    from atlasclust.train._quiet import SCVI_LOGGER, quiet_scvi

    logger = logging.getLogger(SCVI_LOGGER)
    before, verbosity = logger.level, sc.settings.verbosity
    sc.settings.verbosity = level
    try:
        logger.setLevel(logging.INFO)  # scvi-tools' own default
        with quiet_scvi():
            assert logger.isEnabledFor(logging.INFO) == info_shown
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before)
        sc.settings.verbosity = verbosity


LOAD_SCRIPT = """
import sys, tempfile
import atlasclust as ac
adata = ac.datasets.simulate(150, 60, 2, random_state=0)
model = ac.tl.{method}(adata, 2, max_epochs=2, enable_progress_bar=False, return_model=True)
folder = tempfile.mkdtemp()
model.save(folder, overwrite=True, save_anndata=True)
sys.stdout.flush(); sys.stderr.flush()
print("LOAD", flush=True); print("LOAD", file=sys.stderr, flush=True)
loaded = type(model).load(folder)  # no AnnData: the one saved with the model
labels = loaded.predict(adata)
assert (labels == model.predict()).all() and loaded.adata.n_obs == 150
print("DONE", flush=True); print("DONE", file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_loading_a_saved_model_prints_nothing_and_needs_no_anndata(method):
    import subprocess
    import sys

    script = LOAD_SCRIPT.format(method=method)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    for stream in (run.stdout, run.stderr):
        between = stream.split("LOAD", 1)[1].split("DONE", 1)[0]
        assert between.strip() == "", between
