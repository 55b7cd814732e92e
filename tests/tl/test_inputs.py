"""Inputs a user may hold: counts in any container anndata accepts, arguments taken from numpy."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from helpers import FAST, assert_unchanged, snapshot

import atlasclust as ac

OPTIONS = {
    "bgformer": FAST,
    "scrcl": {"n_top_genes": 150, "n_hidden": 64, "max_epochs": 20, "enable_progress_bar": False},
}


# CSC counts on purpose: scvi-tools suggests CSR when it registers them
@pytest.mark.filterwarnings("ignore:Training will be faster when sparse matrix is formatted as CSR:UserWarning")
@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
@pytest.mark.parametrize("container", [sp.csr_array, sp.csc_array, lambda x: x.toarray().astype(np.float16)])
def test_sparse_arrays_and_float16_counts_give_the_csr_matrix_result(counts, method, container):
    # anndata and scanpy accept scipy sparse arrays; scvi-tools' data loaders read sparse matrices only
    other = ad.AnnData(X=container(counts.X), obs=counts.obs.copy(), var=counts.var.copy())
    kind = type(other.X)
    run = getattr(ac.tl, method)
    run(other, 4, **OPTIONS[method])
    reference = run(counts, 4, copy=True, **OPTIONS[method])
    np.testing.assert_array_equal(other.obs[method], reference.obs[method])
    assert type(other.X) is kind  # the user's matrix is left as it was


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_numpy_integers_give_the_python_int_result(counts, method):
    run = getattr(ac.tl, method)
    options = OPTIONS[method] | {"max_epochs": 3, "batch_size": 128, "random_state": 2}
    reference = run(counts, 4, copy=True, **options)
    numpy_options = options | {key: np.int64(options[key]) for key in ("max_epochs", "batch_size", "random_state")}
    result = run(counts, np.int64(4), copy=True, **numpy_options)
    np.testing.assert_array_equal(result.obs[method], reference.obs[method])
    params = result.uns[method]["params"]
    assert params["max_epochs"] == 3 and type(params["max_epochs"]) is int  # stored as a number, not its repr


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_fractional_epochs_are_refused_by_name(counts, method):
    with pytest.raises(TypeError, match="max_epochs must be an integer, got 2.5"):
        getattr(ac.tl, method)(counts, 4, copy=True, **(OPTIONS[method] | {"max_epochs": 2.5}))


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_log_expression_with_counts_in_raw_points_to_raw_and_the_advice_works(counts, method):
    # an older scanpy pipeline: the counts kept in adata.raw, adata.X log-normalised
    adata = counts.copy()
    adata.raw = adata
    adata.X = np.log1p(adata.X)
    before = snapshot(adata)
    run = getattr(ac.tl, method)
    with pytest.raises(ValueError, match=r"non-integer.*adata\.raw is set.*adata\.layers\['counts'\] = adata\.raw"):
        run(adata, 4, **OPTIONS[method])
    assert_unchanged(adata, before)
    adata.layers["counts"] = adata.raw[:, adata.var_names].X  # the advice, as written
    run(adata, 4, layer="counts", **OPTIONS[method])
    assert adata.obs[method].nunique() == 4
    without_raw = ad.AnnData(X=np.log1p(counts.X), obs=counts.obs.copy(), var=counts.var.copy())
    with pytest.raises(ValueError, match="non-integer") as error:
        run(without_raw, 4, **OPTIONS[method])
    assert "adata.raw" not in str(error.value)


@pytest.mark.parametrize(
    ("method", "option"),
    [
        ("bgformer", {"dec_weight": -1.0}),  # ran before, with the DEC loss maximised
        ("bgformer", {"input_noise": float("nan")}),  # failed as "diverged: try a lower learning rate"
        ("bgformer", {"resolution": -1.0}),  # ran before, into one cluster
        ("scrcl", {"temperature": 0.0}),  # failed as "diverged: try a lower learning rate"
        ("scrcl", {"alpha": -5.0}),  # ran before, with the contrastive loss maximised
        ("bgformer", {"pretrain_fraction": 1.5}),  # ran before, clipped to one clustering epoch
        ("bgformer", {"n_anchors": 0}),  # failed as "float division by zero"
        ("bgformer", {"batch_size": 0}),  # failed as "integer modulo by zero"
        ("bgformer", {"max_epochs": 0}),
        ("scrcl", {"n_hidden": 0}),  # failed as "diverged: try a lower learning rate"
        ("scrcl", {"batch_size": 0}),  # ran before
    ],
)
def test_meaningless_weights_and_temperatures_are_refused_by_name(counts, method, option):
    before = snapshot(counts)
    (name,) = option
    with pytest.raises(ValueError, match=f"{name}="):
        getattr(ac.tl, method)(counts, None if name == "resolution" else 4, **(OPTIONS[method] | option))
    assert_unchanged(counts, before)


@pytest.mark.parametrize(
    ("method", "typo", "meant"),
    [
        ("scrcl", "max_epoch", "max_epochs"),  # a tool argument
        ("bgformer", "n_anchor", "n_anchors"),
        ("bgformer", "dec_weigth", "dec_weight"),  # a model option
        ("scrcl", "wieght_decay", "weight_decay"),  # a training option
        ("bgformer", "gradient_clip_vals", "gradient_clip_val"),  # a Lightning Trainer argument
    ],
)
def test_a_misspelt_keyword_fails_before_any_work_naming_the_closest_option(counts, method, typo, meant):
    before = snapshot(counts)
    with pytest.raises(
        TypeError, match=rf"tl\.{method}\(\) got an unexpected keyword argument '{typo}'; did you mean '{meant}'\?"
    ):
        getattr(ac.tl, method)(counts, 4, **{typo: 2})
    assert_unchanged(counts, before)


def test_an_unknown_keyword_with_no_close_option_points_to_the_docstring(counts):
    with pytest.raises(TypeError, match="unexpected keyword argument 'zzz' \\(see the function's docstring"):
        ac.tl.bgformer(counts, 4, zzz=1)


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_the_highly_variable_selection_is_used(counts, method):
    chosen = np.zeros(counts.n_vars, dtype=bool)
    chosen[::3] = True
    counts.var["highly_variable"] = chosen
    options = OPTIONS[method] | {"max_epochs": 2}
    run = getattr(ac.tl, method)
    result = run(counts, 4, copy=True, **options)
    assert list(result.uns[method]["genes"]) == list(counts.var_names[chosen])
    assert result.uns[method]["params"]["mask_var"] == "highly_variable"
    # an explicit None, or another column, wins over the default
    every_other = run(counts, 4, copy=True, mask_var=None, **options)
    assert len(every_other.uns[method]["genes"]) == options["n_top_genes"]
    counts.var["mine"] = ~chosen
    mine = run(counts, 4, copy=True, mask_var="mine", **options)
    assert list(mine.uns[method]["genes"]) == list(counts.var_names[~chosen])


def test_highly_variable_default_is_said_at_info_level(counts, monkeypatch):
    from scanpy import logging as logg

    said = []
    monkeypatch.setattr(logg, "info", lambda message, **kwargs: said.append(message))
    counts.var["highly_variable"] = np.arange(counts.n_vars) < 60
    ac.tl.bgformer(counts, 4, copy=True, **(OPTIONS["bgformer"] | {"max_epochs": 2}))
    assert "    using the 60 genes of var['highly_variable'] (mask_var)" in said


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_a_panel_with_fewer_genes_than_the_default_trains_on_all_of_them(method):
    panel = ac.datasets.simulate(300, 120, 3, n_markers=20, random_state=1)  # a targeted panel: fewer than 2000
    options = {k: v for k, v in OPTIONS[method].items() if k != "n_top_genes"} | {"max_epochs": 2}
    getattr(ac.tl, method)(panel, 3, **options)
    assert len(panel.uns[method]["genes"]) == 120
    assert panel.uns[method]["params"]["n_top_genes"] == 2000  # the default, never an error


# raised inside scanpy's sc.pp.neighbors on these counts (scanpy 1.11 and 1.12), not by atlasclust
@pytest.mark.filterwarnings(
    "ignore:Changing the sparsity structure of a csr_matrix:scipy.sparse.SparseEfficiencyWarning"
)
@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_genes_without_counts_are_left_out_and_the_model_reloads(counts, method, tmp_path):
    x = counts.X.toarray()
    x[:, [4, 9]] = 0  # every subset of an atlas has such genes
    counts.X = sp.csr_matrix(x)
    options = OPTIONS[method] | {"n_top_genes": None, "max_epochs": 2}
    adata, model = getattr(ac.tl, method)(counts, 4, copy=True, return_model=True, **options)
    assert len(adata.uns[method]["genes"]) == 198
    assert not {counts.var_names[4], counts.var_names[9]} & set(adata.uns[method]["genes"])
    # the module trained is the one built at the narrower width, with the input transform learnt (scRCL's
    # principal axes were once set on the module it replaced, and its embedding collapsed to two points)
    assert len(np.unique(adata.obsm[f"X_{method}"], axis=0)) == counts.n_obs
    assert adata.obs[method].nunique() == 4
    model.save(tmp_path / "model")
    loaded = type(model).load(tmp_path / "model", counts)
    np.testing.assert_array_equal(loaded.predict(), model.predict())
