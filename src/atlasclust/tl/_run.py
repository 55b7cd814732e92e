"""The flow every ``tl`` tool runs, written once: check, train under the guards, write only after success, return.

A tool is its signature, its docstring, how it builds and trains its model (``fit``) and what it
reads back from the trained model (``collect``); a third method plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import scvi
from scanpy import logging as logg
from scvi.model.base import UnsupervisedTrainingMixin

from atlasclust._validate import check_keywords, keyword_names, trainer_keywords
from atlasclust.data import Collection, default_mask_var, gene_mask, raw_counts_hint, training_view
from atlasclust.train import checkpoint_folder, deterministic_mode, halving_batch_size_on_oom, lightning_info_as_scanpy

from ._results import cluster_categorical, package_versions, storable, write_clustering


@dataclass
class Collected:
    """What a tool reads back from its trained model, to be written under ``key_added``.

    ``obs``, ``obsm``, ``obsp`` and ``varm`` map full keys to values (an ``obsm`` value of ``None``
    removes an earlier run's entry); ``uns`` entries join ``params`` and ``history``; ``params``
    joins the call's arguments.
    """

    embedding: np.ndarray
    codes: np.ndarray
    params: dict = field(default_factory=dict)
    uns: dict = field(default_factory=dict)
    obs: dict = field(default_factory=dict)
    obsm: dict = field(default_factory=dict)
    obsp: dict = field(default_factory=dict)
    varm: dict = field(default_factory=dict)


@dataclass
class Tool:
    """A method as a ``tl`` tool.

    Attributes
    ----------
    name
        The tool's name in messages (``"tl.bgformer"``).
    model_cls
        The model class: its ``setup_anndata``, constructor and ``train`` take, by name, the
        tool's arguments they declare (the rest of ``**kwargs`` go to ``train``, for Lightning).
    collect
        ``collect(model)``: embedding, cluster codes and method-specific results, still under the
        call's guards.
    data_keys
        Arguments naming what the training view keeps besides the counts, with the AnnData slot
        each names (``{"batch_key": "obs", "spatial_key": "obsm"}``).
    """

    name: str
    model_cls: type
    collect: Callable[[object], Collected]
    data_keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        model = self.model_cls
        self.setup_options = keyword_names(model.setup_anndata) - {"adata"}
        self.model_options = keyword_names(model.__init__) - {"adata", "registry"}
        self.train_options = keyword_names(model.train)
        #: every keyword the tool passes on; any other raises at once
        self.accepted = (
            self.model_options | keyword_names(model.train, UnsupervisedTrainingMixin.train) | trainer_keywords()
        )

    def fit(
        self, adata: ad.AnnData, arguments: dict, kwargs: dict, *, genes, batch_size: int, folder, cells=None
    ) -> object:
        """Set up a view of ``adata``, build the model and train it (``genes``: the resolved gene mask or ``None``).

        With ``cells`` (a :class:`~atlasclust.data.Collection`), the model trains on the collection instead.
        """
        lightning = {name: value for name, value in kwargs.items() if name not in self.model_options}
        train = _named(arguments, self.train_options) | lightning | {"batch_size": batch_size, "checkpoint_dir": folder}
        if cells is not None:
            setup = _named(arguments, self.setup_options - {"layer"})
            options = setup | _named(arguments, self.model_options) | {"mask_var": genes}
            model = self.model_cls.from_collection(cells, **options)
            model.train(**train)
            return model
        slots = {
            slot: tuple(arguments[name] for name, where in self.data_keys.items() if where == slot) for slot in SLOTS
        }
        view = training_view(
            adata, arguments["layer"], obs_keys=slots["obs"], obsm_keys=slots["obsm"], obsp_keys=slots["obsp"]
        )
        self.model_cls.setup_anndata(view, **_named(arguments, self.setup_options))
        model = self.model_cls(view, **_named(arguments, self.model_options) | {"mask_var": genes})
        model.train(**train)
        return model


#: The AnnData slots a training view can keep, besides the counts.
SLOTS = ("obs", "obsm", "obsp")


def _named(arguments: dict, names: set[str]) -> dict:
    return {name: value for name, value in arguments.items() if name in names}


def run_tool(
    tool: Tool,
    adata: ad.AnnData,
    arguments: dict,
    kwargs: dict,
    *,
    checks: Callable[[], None] | None = None,
    first_batch_size: int | Callable[[int], int],
):
    """Run ``tool`` on ``adata`` with the call's ``arguments`` (its named parameters) and ``**kwargs``.

    Every check runs once, before any work; the results are written only after training and
    collecting succeeded, into ``adata`` or a copy of it. ``first_batch_size`` is the batch size to
    try first, or a function of the number of cells giving it.
    """
    arguments = arguments | kwargs
    start = logg.info(f"running {tool.model_cls.method_name}")
    cells = None
    if not isinstance(adata, ad.AnnData):  # an annbatch collection: the results go to a new AnnData of its cells
        cells = _collection(tool, adata, arguments)
        adata = cells.as_anndata()
    if callable(first_batch_size):  # the number of cells is known only now, after the collection check
        first_batch_size = first_batch_size(adata.n_obs)
    if arguments["copy"] and adata.isbacked:
        msg = "copy=True needs an in-memory AnnData; with backed data, write the result with adata.write(new_path)."
        raise ValueError(msg)
    if checks is not None:
        checks()
    check_keywords(tool.name, kwargs, tool.accepted)
    mask_var = default_mask_var(adata.var, arguments["mask_var"])
    genes = gene_mask(adata.var, mask_var)  # a clear error for a bad selection, before any work
    arguments["mask_var"] = mask_var if genes is None or isinstance(mask_var, str) else "boolean array"

    def fit(batch_size: int):
        with lightning_info_as_scanpy():  # Lightning logs "Seed set to …"
            scvi.settings.seed = arguments["random_state"]
        folder = checkpoint_folder(arguments["checkpoint_dir"], batch_size, initial=first_batch_size)
        return tool.fit(adata, arguments, kwargs, genes=genes, batch_size=batch_size, folder=folder, cells=cells)

    with raw_counts_hint(adata), deterministic_mode(arguments["deterministic"]):
        model = halving_batch_size_on_oom(fit, first_batch_size, allow=arguments["auto_batch_size"])
        collected = tool.collect(model)
    labels = cluster_categorical(collected.codes)
    params = arguments | {
        "n_epochs_trained": len(model.history_),
        "n_clusters_found": len(labels.categories),
        "batch_size_used": int(model.batch_size_),
        **collected.params,
        "versions": package_versions(),
    }
    key_added = arguments["key_added"]
    new_object = arguments["copy"] or cells is not None
    target = adata.copy() if arguments["copy"] and cells is None else adata
    written = write_clustering(
        target,
        key_added,
        embedding=collected.embedding,
        labels=labels,
        obs_extra=collected.obs,
        obsm_extra=collected.obsm,
        uns={"params": storable(params), "history": model.history_} | collected.uns | {"genes": model.selected_genes_},
    )
    for slot in ("obsp", "varm"):
        for name, values in getattr(collected, slot).items():
            getattr(target, slot)[name] = values
            written.append(f"{slot}[{name!r}]")
    logg.info(
        "    finished",
        time=start,
        deep=f"found {len(labels.categories)} clusters and added\n    " + ", ".join(written),
    )
    if arguments["return_model"]:
        return (target, model) if new_object else model
    return target if new_object else None


def _collection(tool: Tool, collection, arguments: dict) -> Collection:
    """The annbatch collection a tool was given instead of an AnnData, checked before any work."""
    if not hasattr(tool.model_cls, "from_collection"):
        msg = (
            f"{tool.name} takes an AnnData, not {type(collection).__name__}: {tool.model_cls.__name__} has no "
            "from_collection and trains with all cells in memory."
        )
        raise TypeError(msg)
    if arguments.get("layer") is not None:
        msg = "An annbatch collection holds its counts in X: layer= does not apply."
        raise ValueError(msg)
    return Collection(collection)
