"""``tl.<method>`` restates its model's defaults in its own signature; they must not drift apart."""

import inspect

import pytest

import atlasclust as ac
from atlasclust._constants import HIGHLY_VARIABLE_IF_PRESENT
from atlasclust.models import SCRCL, BGFormer

#: Defaults that differ on purpose: the tools read var["highly_variable"] as sc.pp.pca does; the models
#: take the mask they are given (tl passes the one it resolved).
BY_DESIGN = {"mask_var": (HIGHLY_VARIABLE_IF_PRESENT, None)}


@pytest.mark.parametrize(("function", "model"), [(ac.tl.bgformer, BGFormer), (ac.tl.scrcl, SCRCL)])
def test_tool_defaults_match_the_model(function, model):
    tool_parameters = inspect.signature(function).parameters
    compared = []
    for method in (model.setup_anndata, model.__init__, model.train):
        for name, parameter in inspect.signature(method).parameters.items():
            if name in BY_DESIGN:
                assert (tool_parameters[name].default, parameter.default) == BY_DESIGN[name]
                continue
            if name in tool_parameters and name != "adata" and parameter.default is not inspect.Parameter.empty:
                assert tool_parameters[name].default == parameter.default, (
                    f"{function.__name__}({name}={tool_parameters[name].default!r}) but "
                    f"{model.__name__}.{method.__name__}({name}={parameter.default!r})"
                )
                compared.append(name)
    # the options a user tunes most are among those compared
    assert {"n_clusters", "n_top_genes", "resolution", "max_epochs", "lr", "layer"} <= set(compared)
