"""The README's quick start runs as written (with short training, and ``new_cells`` defined)."""

import re
from pathlib import Path

import matplotlib as mpl
import pytest

from atlasclust.bgformer import _fit as bgformer_fit
from atlasclust.scrcl import _fit as scrcl_fit

README = Path(__file__).parents[1] / "README.md"


def quick_start() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the README should hold one Python example"
    return blocks[0]


@pytest.mark.slow
def test_quick_start_runs(tmp_path, monkeypatch):
    mpl.use("Agg")
    monkeypatch.chdir(tmp_path)  # it saves a model folder
    # the epochs only set how long it takes
    monkeypatch.setattr(bgformer_fit, "default_max_epochs", lambda *args, **kwargs: 2)
    monkeypatch.setattr(scrcl_fit, "default_max_epochs", lambda *args, **kwargs: 5)
    code = quick_start()
    loading = code.index("labels = ac.models.BGFormer.load")
    # the example's new_cells stands for the user's own cells: here, cells of the same dataset
    code = code[:loading] + "new_cells = adata[:300].copy()\n" + code[loading:]
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert len(namespace["labels"]) == 300
    assert namespace["adata"].obs["scrcl"].nunique() > 1
    assert namespace["spots"].obs["scrcl"].nunique() > 1
    assert (tmp_path / "pbmc3k_bgformer").is_dir()
    adata = namespace["adata"]
    assert list(adata.uns["bgformer"]["genes"]) == list(adata.var_names[adata.var["highly_variable"]])
