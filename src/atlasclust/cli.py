"""The ``atlasclust`` command: ``demo`` on the shipped dataset, ``bgformer`` and ``scrcl`` on a file.

Outputs are written to a temporary file beside the target and renamed into place only on
success, so a failed or interrupted run never leaves a partial file or damages an earlier output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from atlasclust._constants import (
    BGFORMER_CENTER_INIT,
    BGFORMER_RESOLUTION,
    CENTER_INITS,
    DEFAULT_N_TOP_GENES,
    GRAPH_NORMALIZATION_CHOICES,
    HIGHLY_VARIABLE_IF_PRESENT,
    INPUT_CENTERS,
    INPUT_FEATURES,
    REPRESENTATIONS,
    SCRCL_CENTER_INIT,
    SCRCL_RESOLUTION,
)

#: What ``atlasclust --help`` says first (plain text: argparse prints it as it is).
DESCRIPTION = "Cluster single-cell data with BGFormer or scRCL: 'demo' on the shipped dataset, or a method on a file."
#: Python values in the tools' messages and what a command-line user types instead.
_FLAG_VALUES = {"None": "all"}

#: The Leiden resolution each command's tool takes when none is given.
DEFAULT_RESOLUTIONS = {"bgformer": BGFORMER_RESOLUTION, "scrcl": SCRCL_RESOLUTION}
#: The ``center_init`` each command's tool takes when none is given.
DEFAULT_CENTER_INITS = {"bgformer": BGFORMER_CENTER_INIT, "scrcl": SCRCL_CENTER_INIT}


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp makes the file private (0600): give it the mode the output would have had otherwise
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _gene_count(value: str) -> int | str:
    """``--n-top-genes``: a positive integer, or ``all``."""
    if value == "all":
        return value
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}")
    return count


def _n_top_genes(value: int | str | None) -> int | None:
    """The tools' ``n_top_genes`` for the option's value (``None``: the tools' default, 2000 or all when fewer)."""
    if value == "all":
        return None
    return DEFAULT_N_TOP_GENES if value is None else value


def _mask_var(value: str | None):
    """The tools' ``mask_var`` for ``--mask-var``: a var column, ``none`` for no selection, or the tools' default."""
    if value is None:
        return HIGHLY_VARIABLE_IF_PRESENT
    return None if value == "none" else value


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    if b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _quiet_lightning() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_method(args: argparse.Namespace) -> int:
    """``atlasclust bgformer|scrcl IN -o OUT``: run the method on a file and write a new file."""
    import anndata as ad

    from atlasclust import tl

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        raise FileNotFoundError(f"input file not found: {source}")
    if _same_file(source, target):
        raise ValueError(f"refusing to write over the input file {source}; choose another output path")
    try:
        backed = args.backed and _stores_x(source)
        if args.backed and not backed:
            # anndata keeps only X on disk in backed mode (layers are read into memory), and it cannot
            # write a backed object whose file has no X
            print(
                f"note: {source} has no X, so it is read into memory (--backed keeps only X on disk)", file=sys.stderr
            )
        adata = ad.read_h5ad(source, backed="r" if backed else None)
    except Exception as error:  # h5py and anndata raise many kinds for unreadable files
        raise ValueError(f"cannot read {source} as an .h5ad file: {error}") from error
    options = {"batch_key": args.batch_key}
    if args.resolution is not None:  # otherwise the method's own default
        options["resolution"] = args.resolution
    if args.center_init is not None:  # otherwise the method's own default
        options["center_init"] = args.center_init
    if args.command == "bgformer":
        if args.dec_weight is not None:  # otherwise the model's own default
            options["dec_weight"] = args.dec_weight
    if args.command == "scrcl":
        options |= {
            "spatial_key": args.spatial_key,
            "library_key": args.library_key,
            "mnn_neighbors": args.mnn_neighbors,
            "graph_key": args.graph_key,
            "smooth_labels": args.smooth_labels,
            "representation": args.representation,
            "input_features": args.input_features,
            "input_center": args.input_center,
            "balance_negatives": not args.uniform_negatives,
            "cluster_components": not args.cluster_embedding_only,
            "graph_normalization": args.graph_normalization,
            "metric": args.metric,
        }
    start = time.perf_counter()
    getattr(tl, args.command)(
        adata,
        args.n_clusters,
        layer=args.layer,
        max_epochs=args.max_epochs,
        mask_var=_mask_var(args.mask_var),
        n_top_genes=_n_top_genes(args.n_top_genes),
        random_state=args.seed,
        key_added=args.key_added or args.command,
        enable_progress_bar=_progress_bar(args),
        accelerator=args.accelerator,
        checkpoint_dir=args.checkpoint_dir,
        **options,
    )
    _write_atomically(target, adata.write_h5ad)
    n_found = adata.obs[args.key_added or args.command].nunique()
    print(f"wrote {target} ({n_found} clusters, {time.perf_counter() - start:.1f} s)")
    return 0


def _progress_bar(args: argparse.Namespace) -> bool:
    """Show the training progress bar only on a terminal: in a batch job's log it writes a line per update."""
    return not args.quiet and sys.stdout.isatty()  # scvi-tools draws it on standard output


def _stores_x(path: Path) -> bool:
    """Whether the .h5ad file at ``path`` holds an ``X``."""
    import h5py

    with h5py.File(path, "r") as file:
        return "X" in file


def run_demo(args: argparse.Namespace) -> int:
    """``atlasclust demo``: BGFormer on the shipped Zeisel data, scored against its labels."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from atlasclust import datasets, metrics, pl, tl

    out = Path(args.out)
    adata = datasets.zeisel()
    n_types = adata.obs["cell_type"].nunique()
    print(f"Zeisel et al. 2015: {adata.n_obs} cells, {adata.n_vars} genes, {n_types} labelled cell types")
    start = time.perf_counter()
    tl.bgformer(
        adata, n_types, max_epochs=args.max_epochs, random_state=args.seed, enable_progress_bar=_progress_bar(args)
    )
    seconds = time.perf_counter() - start
    scores = metrics.evaluate(adata.obs["cell_type"], adata.obs["bgformer"])
    print("BGFormer against the labels: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    print(f"wall time: {seconds:.1f} s")
    figure = pl.embedding(adata, color=["bgformer", "cell_type"], show=False, return_fig=True)
    _write_atomically(out / "umap.png", lambda tmp: figure.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(figure)
    _write_atomically(out / "zeisel_bgformer.h5ad", adata.write_h5ad)
    print(f"wrote {out / 'zeisel_bgformer.h5ad'} and {out / 'umap.png'}")
    return 0


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("atlasclust")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``atlasclust`` command."""
    parser = argparse.ArgumentParser(prog="atlasclust", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run BGFormer on the shipped Zeisel dataset and score it")
    demo.add_argument("--out", default="atlasclust-demo", help="folder for the result .h5ad and UMAP PNG")
    demo.add_argument("--max-epochs", type=int, default=None, help="training epochs (default: automatic)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bar (shown only when the output is a terminal)")
    demo.set_defaults(run=run_demo)

    for name, summary in (
        ("bgformer", "cluster the cells of an .h5ad file with BGFormer"),
        ("scrcl", "cluster the cells (or spots) of an .h5ad file with scRCL"),
    ):
        method = commands.add_parser(name, help=summary)
        method.add_argument("input", help="input .h5ad with raw counts")
        method.add_argument("-o", "--output", required=True, help="output .h5ad (never the input)")
        method.add_argument("--n-clusters", type=int, default=None, help="number of clusters (default: Leiden)")
        method.add_argument(
            "--resolution",
            type=float,
            default=None,
            help=f"Leiden resolution without --n-clusters (default: {DEFAULT_RESOLUTIONS[name]})",
        )
        method.add_argument("--layer", default=None, help="layer with raw counts (default: X)")
        method.add_argument(
            "--backed",
            action="store_true",
            help="read the input backed (mini-batches from disk; anndata keeps only X there, layers are read into memory)",
        )
        method.add_argument("--max-epochs", type=int, default=None)
        method.add_argument(
            "--n-top-genes",
            type=_gene_count,
            metavar="N|all",
            default=None,
            help="without a gene selection: number of top-ranked genes used, or 'all' (default: 2000, or all when "
            "there are fewer)",
        )
        method.add_argument(
            "--mask-var",
            metavar="COLUMN|none",
            default=None,
            help="boolean var column of the genes to use, or 'none' for the --n-top-genes top-ranked genes "
            "(default: the column highly_variable when the file has one)",
        )
        method.add_argument("--key-added", default=None, help=f"result key (default: {name})")
        method.add_argument("--accelerator", default="auto")
        method.add_argument("--seed", type=int, default=0)
        method.add_argument(
            "--checkpoint-dir", default=None, help="folder for per-epoch checkpoints; rerun with it to resume"
        )
        method.add_argument(
            "--quiet", action="store_true", help="no progress bar (shown only when the output is a terminal)"
        )
        method.add_argument(
            "--batch-key",
            default=None,
            help="obs column of each cell's batch (sample, donor), so clusters need not follow it",
        )
        method.add_argument(
            "--center-init",
            choices=CENTER_INITS,
            default=None,
            help="clusters at --n-clusters from k-means (kmeans), from k-means at twice that with the closest "
            "sub-clusters joined (merged: large cell types split less often), or from whichever of the two has "
            f"the higher modularity on the embedding's kNN graph (auto) (default: {DEFAULT_CENTER_INITS[name]})",
        )
        if name == "bgformer":
            method.add_argument(
                "--dec-weight",
                type=float,
                default=None,
                help="weight of the DEC loss in the clustering phase (default: 0.1); lighter keeps the clusters "
                "closer to those that phase starts from",
            )
        if name == "scrcl":
            method.add_argument("--spatial-key", default=None, help="obsm key of spot coordinates, e.g. spatial")
            method.add_argument(
                "--library-key", default=None, help="obs column of each spot's slice when several are pooled"
            )
            method.add_argument(
                "--mnn-neighbors",
                type=int,
                default=5,
                help="with --library-key: join spots of two slices that are mutual nearest neighbours in expression "
                "among this many (0: none)",
            )
            method.add_argument("--graph-key", default=None, help="obsp key of a cell graph to use")
            method.add_argument("--smooth-labels", type=int, default=0, help="majority vote over N spatial neighbours")
            method.add_argument(
                "--representation",
                choices=REPRESENTATIONS,
                default="views",
                help="embedding clustered: the two views (default) or the paper's gene-refined views",
            )
            method.add_argument(
                "--input-features",
                choices=INPUT_FEATURES,
                default="auto",
                help="what the views read: principal components, centred scaled log expression, uncentred, or raw "
                "counts; auto (default) takes components without --spatial-key and centred expression with it",
            )
            method.add_argument(
                "--input-center",
                choices=INPUT_CENTERS,
                default="balanced",
                help="origin of the component input: the median of k-means centres (default) or the mean cell",
            )
            method.add_argument(
                "--uniform-negatives",
                action="store_true",
                help="weigh every cell alike in the contrastive loss, not each k-means cluster of the components alike",
            )
            method.add_argument(
                "--cluster-embedding-only",
                action="store_true",
                help="with n_clusters, cluster the embedding alone, not beside the principal components the views read",
            )
            method.add_argument(
                "--metric", default="euclidean", help="distance of the expression graph, e.g. cosine (the reference's)"
            )
            method.add_argument(
                "--graph-normalization",
                choices=GRAPH_NORMALIZATION_CHOICES,
                default="auto",
                help="GCN view: the reference's symmetric form up to 20,000 cells and the mean over each cell and "
                "its neighbours above (auto), or either one",
            )
        method.set_defaults(run=run_method)
    return parser


def as_flags(message: str, options: Sequence[str]) -> str:
    """``message`` of a tool with its keyword arguments written as the command's flags.

    ``layer='counts'`` becomes ``--layer counts`` and a bare ``batch_key`` becomes ``--batch-key``,
    for each name in ``options`` (the command's argument names).
    """
    for name in sorted(options, key=len, reverse=True):
        flag = "--" + name.replace("_", "-")
        message = re.sub(
            rf"`?\b{name}=(['\"]?)([^'\"\s,;)`]*)\1`?",
            lambda match, flag=flag: f"`{flag} {_FLAG_VALUES.get(match[2], match[2])}`",
            message,
        )
        if "_" in name:  # one-word names ("layer") are also plain words of the message
            message = re.sub(rf"(?<![-\w']){name}\b(?!=)", flag, message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 with a message on error, no output file left)."""
    args = build_parser().parse_args(argv)
    _quiet_lightning()
    try:
        return args.run(args)
    except (ValueError, KeyError, TypeError, OSError, ArithmeticError, MemoryError) as error:
        message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
        print(
            f"atlasclust {args.command}: error: {as_flags(message, [name for name in vars(args) if name not in ('command', 'run')])}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
