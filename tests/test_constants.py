import inspect
import subprocess
import sys

from atlasclust import _constants as constants
from atlasclust import tl
from atlasclust.models import SCRCL, BGFormer


def test_the_constants_import_nothing_heavy():
    # the command line reads its choices here before it imports torch or scvi-tools
    code = "import sys, atlasclust._constants; print(sorted({'torch', 'scvi', 'scanpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tools_and_models_default_to_the_shared_values():
    for function, model in ((tl.bgformer, BGFormer), (tl.scrcl, SCRCL)):
        tool_defaults = inspect.signature(function).parameters
        assert tool_defaults["mask_var"].default is constants.HIGHLY_VARIABLE_IF_PRESENT
        assert tool_defaults["n_top_genes"].default == constants.DEFAULT_N_TOP_GENES
        assert inspect.signature(model).parameters["n_top_genes"].default == constants.DEFAULT_N_TOP_GENES
    assert inspect.signature(tl.bgformer).parameters["resolution"].default == constants.BGFORMER_RESOLUTION
    assert inspect.signature(tl.scrcl).parameters["resolution"].default == constants.SCRCL_RESOLUTION
    assert inspect.signature(BGFormer).parameters["center_init"].default in constants.CENTER_INITS
    assert repr(constants.HIGHLY_VARIABLE_IF_PRESENT) == "'highly_variable' if present"  # as the docs show it
