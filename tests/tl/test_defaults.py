"""``tl.<method>`` restates its model's defaults in its own signature; they must not drift apart."""

import inspect

import pytest

import atlasclust as ac
from atlasclust.models import SCRCL, BGFormer


@pytest.mark.parametrize(("function", "model"), [(ac.tl.bgformer, BGFormer), (ac.tl.scrcl, SCRCL)])
def test_tool_defaults_match_the_model(function, model):
    tool_parameters = inspect.signature(function).parameters
    compared = []
    for method in (model.setup_anndata, model.__init__, model.train):
        for name, parameter in inspect.signature(method).parameters.items():
            if name in tool_parameters and name != "adata" and parameter.default is not inspect.Parameter.empty:
                assert tool_parameters[name].default == parameter.default, (
                    f"{function.__name__}({name}={tool_parameters[name].default!r}) but "
                    f"{model.__name__}.{method.__name__}({name}={parameter.default!r})"
                )
                compared.append(name)
    # the options a user tunes most are among those compared
    assert {"n_clusters", "n_top_genes", "resolution", "max_epochs", "lr", "layer"} <= set(compared)
