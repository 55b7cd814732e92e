"""Loading a saved model, as both models do it: for a user's AnnData (a light view of it) or for the saved one."""

from __future__ import annotations

import anndata as ad
import pandas as pd
from scvi.model.base import BaseModelClass
from scvi.model.base._save_load import _load_saved_files

from atlasclust.data import check_batch_column, check_same_genes, saved_batches, training_view

from ._quiet import quiet_scvi


def load_saved_model(cls: type[BaseModelClass], dir_path: str, adata: ad.AnnData | None, **kwargs):
    """``cls.load`` of scvi-tools, quietly, for ``adata`` or, when it is ``None``, the AnnData saved with the model.

    ``adata`` itself is not modified: the model registers a light view of it holding the counts and
    what the registry names (batch column, spot coordinates, cell graph). Genes and batches are
    checked first, with messages that say what differs. ``**kwargs`` go to scvi-tools' ``load``.
    """
    with quiet_scvi():
        if adata is None:  # scvi-tools' convention: the data saved with save(save_anndata=True)
            return BaseModelClass.load.__func__(cls, dir_path, adata=None, **kwargs)
        _, var_names, _, _ = _load_saved_files(dir_path, load_adata=False, map_location="cpu")
        check_same_genes(pd.Index(var_names), adata)
        registry = cls.load_registry(dir_path)
        setup = registry["setup_args"]
        view = training_view(
            adata,
            setup["layer"],
            obs_keys=(setup.get("batch_key"),),  # models saved before batch_key have none
            obsm_keys=(setup.get("spatial_key"),),
            obsp_keys=(setup.get("graph_key"),),
        )
        if (batches := saved_batches(registry)) is not None:
            check_batch_column(view, setup["batch_key"], known=batches)
        return BaseModelClass.load.__func__(cls, dir_path, adata=view, **kwargs)
