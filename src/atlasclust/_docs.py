"""Parameter text the tools and the models share, written once (as scanpy's and squidpy's ``_docs`` modules do)."""

from __future__ import annotations

import re
from collections.abc import Callable
from textwrap import dedent, indent

_DOCS = {
    "doc_adata": """\
adata
    Annotated data with raw counts (cells x genes).""",
    "doc_layer": """\
layer
    Layer with raw counts; ``None`` uses ``adata.X``. A file opened with ``backed="r"`` keeps
    only ``X`` on disk (anndata reads its layers into memory).""",
    "doc_genes": """\
mask_var
    The genes to train on, as in :func:`scanpy.pp.pca`: the name of a boolean ``var`` column or
    a boolean array over the genes. By default ``var["highly_variable"]`` when it exists (from
    :func:`scanpy.pp.highly_variable_genes`; an info message says so); ``None`` or no such
    column: the ``n_top_genes`` top-ranked genes.
n_top_genes
    Without a gene selection: the number of top-ranked genes to use (BGFormer ranks genes by the
    Poisson deviance of their counts, scRCL by normalised dispersion, scanpy's default flavour), all
    genes when there are fewer (targeted panels have a few hundred); ``None`` uses all genes.
    Genes with no counts in any cell are left out either way (an info message says how many).""",
    "doc_model_genes": """\
mask_var
    The genes to train on: the name of a boolean ``var`` column (such as ``"highly_variable"``)
    or a boolean array over the genes. ``None`` chooses ``n_top_genes`` genes.
n_top_genes
    Without ``mask_var``: number of top-ranked genes the model uses (ranked as its
    ``gene_flavor`` says: BGFormer by deviance, scRCL by dispersion), all genes when there
    are fewer; ``None`` uses all genes. Genes with no counts are never used.""",
    "doc_registry": """\
registry
    Used by :meth:`load`; leave it out.""",
    "doc_count_noise": """\
mean_counts
    Average base mean count per gene.
dispersion
    Negative binomial over-dispersion.
library_size_sd
    Std of the log library-size factor.
random_state
    Seed.""",
    "doc_devices": """\
accelerator
    Lightning accelerator: ``"auto"``, ``"cpu"``, ``"gpu"``.
devices
    Lightning devices, e.g. ``2`` or ``[0, 1]``.""",
    "doc_run": """\
auto_batch_size
    On GPU out-of-memory, halve the batch and start again (down to 16 cells) instead of
    raising a :class:`MemoryError` that names the batch size to try.
checkpoint_dir
    Folder for training checkpoints, written at the end of every epoch. Calling again with
    the same folder and arguments after an interruption resumes from the last epoch saved
    and gives the result of an uninterrupted run; see :doc:`/reproducibility`.
deterministic
    Use PyTorch's deterministic kernels during the call (and restore the previous setting
    after). CPU runs are reproducible without it; on a GPU it makes runs with the same
    seed far closer, at some cost in speed (bitwise identical for scRCL; see
    :doc:`/reproducibility` for BGFormer).
enable_progress_bar
    Show one progress bar for the whole training.
random_state
    Seed of everything random in the run (weights, batches, noise, initialisations).
key_added
    Name under which the results are stored (see Returns).
copy
    Return a copy instead of writing into ``adata`` (not for backed data).""",
}


def doc_params(**extra: str) -> Callable:
    """Fill ``{doc_…}`` placeholders of a docstring with the shared text (and ``extra`` texts), indented to fit.

    Only the named placeholders are replaced, so other braces in the docstring stay as they are.
    """
    parts = _DOCS | extra

    def decorate(function: Callable) -> Callable:
        doc = function.__doc__
        for name, text in parts.items():
            # each line of the text at the placeholder's own indentation
            pattern = re.compile(r"^([ \t]*)\{" + name + r"\}", flags=re.MULTILINE)
            doc = pattern.sub(lambda match, text=text: indent(dedent(text), match[1]), doc)
        function.__doc__ = doc
        return function

    return decorate
