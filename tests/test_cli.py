import signal
import stat
import subprocess
import sys
import time

import anndata as ad
import numpy as np
import pytest

import atlasclust as ac
from atlasclust.cli import DEFAULT_CENTER_INITS, _write_atomically, main


def test_demo_writes_result_and_umap_and_prints_scores(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--max-epochs", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "ARI" in printed and "NMI" in printed and "ACC" in printed and "wall time" in printed
    result = ad.read_h5ad(tmp_path / "demo" / "zeisel_bgformer.h5ad")
    assert result.obs["bgformer"].nunique() >= 2 and "X_bgformer" in result.obsm
    png = (tmp_path / "demo" / "umap.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert not list((tmp_path / "demo").glob("*.tmp"))


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch, terminal):
    source = tmp_path / "in.h5ad"
    ac.datasets.simulate(120, 60, 2, n_markers=10).write_h5ad(source)
    capsys.readouterr()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    assert (
        main(["bgformer", str(source), "-o", str(tmp_path / "out.h5ad"), "--n-clusters", "2", "--max-epochs", "2"]) == 0
    )
    assert ("epoch 2/2" in capsys.readouterr().out) == terminal  # a log file gets no progress lines


def test_bgformer_command_backed_writes_a_new_file(tmp_path, capsys):
    source = tmp_path / "in.h5ad"
    adata = ac.datasets.simulate(300, 120, 3, n_markers=20)
    adata.obs["sample"] = np.repeat(["s1", "s2"], 150)
    adata.write_h5ad(source)
    before = source.read_bytes()
    out = tmp_path / "out" / "result.h5ad"
    arguments = ["--n-clusters", "3", "--backed", "--max-epochs", "3", "--batch-key", "sample"]
    code = main(["bgformer", str(source), "-o", str(out), *arguments])
    assert code == 0, capsys.readouterr().err
    result = ad.read_h5ad(out)
    assert result.obs["bgformer"].nunique() >= 2
    assert result.uns["bgformer"]["params"]["batch_key"] == "sample"
    assert source.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["result.h5ad"]


@pytest.mark.parametrize("command", ["bgformer", "scrcl"])
def test_backed_file_without_x_is_read_into_memory(tmp_path, capsys, command):
    # anndata cannot write a backed object whose file has no X
    source = tmp_path / "in.h5ad"
    simulated = ac.datasets.simulate(200, 80, 2, n_markers=15)
    adata = ad.AnnData(obs=simulated.obs, var=simulated.var, layers={"counts": simulated.X})
    adata.write_h5ad(source)
    out = tmp_path / "out.h5ad"
    arguments = ["--n-clusters", "2", "--layer", "counts", "--backed", "--max-epochs", "3", "--n-top-genes", "80"]
    code = main([command, str(source), "-o", str(out), *arguments])
    printed = capsys.readouterr().err
    assert code == 0, printed
    assert "has no X, so it is read into memory" in printed
    assert ad.read_h5ad(out).obs[command].nunique() == 2


def test_bgformer_command_refuses_to_overwrite_its_input(tmp_path, capsys):
    source = tmp_path / "in.h5ad"
    ac.datasets.simulate(100, 60, 2, n_markers=10).write_h5ad(source)
    before = source.read_bytes()
    assert main(["bgformer", str(source), "-o", str(tmp_path / "." / "in.h5ad")]) == 1
    assert "refusing to write over the input" in capsys.readouterr().err
    assert source.read_bytes() == before


@pytest.mark.parametrize("problem", ["unreadable", "missing", "not counts", "missing layer", "missing batch key"])
def test_bgformer_command_fails_cleanly_and_leaves_no_output(tmp_path, capsys, problem):
    source = tmp_path / "in.h5ad"
    extra = []
    if problem == "unreadable":
        source.write_bytes(b"this is not an h5ad file")
    elif problem == "not counts":
        adata = ac.datasets.simulate(100, 60, 2, n_markers=10)
        adata.X = adata.X.multiply(0.5).tocsr()
        adata.write_h5ad(source)
    elif problem == "missing layer":
        ac.datasets.simulate(100, 60, 2, n_markers=10).write_h5ad(source)
        extra = ["--layer", "counts"]
    elif problem == "missing batch key":
        ac.datasets.simulate(100, 60, 2, n_markers=10).write_h5ad(source)
        extra = ["--batch-key", "donor"]
    out = tmp_path / "out.h5ad"
    assert main(["bgformer", str(source), "-o", str(out), "--max-epochs", "2", "--quiet", *extra]) == 1
    err = capsys.readouterr().err
    assert "error:" in err
    expected = {
        "unreadable": "cannot read",
        "missing": "not found",
        "not counts": "non-integer",
        "missing layer": "Layer 'counts' not found",
        "missing batch key": "'donor' not found in adata.obs",
    }
    assert expected[problem] in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if problem == "missing" else ["in.h5ad"])


def test_failed_run_keeps_an_earlier_output(tmp_path):
    source, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    adata = ac.datasets.simulate(100, 60, 2, n_markers=10)
    adata.X = adata.X.multiply(0.5).tocsr()
    adata.write_h5ad(source)
    out.write_bytes(b"previous result")
    assert main(["bgformer", str(source), "-o", str(out), "--quiet"]) == 1
    assert out.read_bytes() == b"previous result"
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["in.h5ad", "out.h5ad"])


def test_output_has_the_mode_of_a_normal_new_file_or_of_the_file_it_replaces(tmp_path):
    def write(tmp):
        tmp.write_bytes(b"result")

    normal = tmp_path / "normal"
    normal.write_bytes(b"")  # a file created as open() creates it: 0666 less the umask
    new = tmp_path / "new.h5ad"
    _write_atomically(new, write)
    assert stat.S_IMODE(new.stat().st_mode) == stat.S_IMODE(normal.stat().st_mode) != 0o600
    shared = tmp_path / "shared.h5ad"
    shared.write_bytes(b"previous result")
    shared.chmod(0o664)
    _write_atomically(shared, write)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664
    assert shared.read_bytes() == b"result"


KILLED_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from atlasclust.cli import _write_atomically

def write_half_then_die(tmp):
    tmp.write_bytes(b"half a file")
    os.kill(os.getpid(), signal.SIGKILL)

_write_atomically(Path(sys.argv[1]), write_half_then_die)
"""


def test_killed_mid_write_leaves_the_earlier_output_whole(tmp_path):
    out = tmp_path / "out.h5ad"
    out.write_bytes(b"previous result")
    done = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(out)], check=False)
    assert done.returncode == -signal.SIGKILL
    assert out.read_bytes() == b"previous result"
    # what SIGKILL cannot clean up is a hidden temporary file, never the output itself
    assert [p.name for p in tmp_path.iterdir() if p.name != "out.h5ad"][0].startswith(".out.h5ad.")


def test_killed_during_training_writes_nothing(tmp_path):
    source, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    ac.datasets.simulate(400, 100, 3, n_markers=20).write_h5ad(source)
    command = [sys.executable, "-m", "atlasclust.cli", "bgformer", str(source), "-o", str(out), "--max-epochs", "500"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(10)  # imports, reading and gene statistics take a few seconds; 500 epochs take minutes
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        process.kill()
        process.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad"]


def test_scrcl_command_on_spatial_spots(tmp_path, capsys):
    source, out = tmp_path / "tissue.h5ad", tmp_path / "out.h5ad"
    tissue = ac.datasets.simulate_tissue(20, 20, 3, n_genes=120, random_state=0)
    tissue.obs["slice"] = np.where(tissue.obsm["spatial"][:, 0] < 10, "left", "right")
    tissue.write_h5ad(source)
    arguments = ["scrcl", str(source), "-o", str(out), "--n-clusters", "3", "--spatial-key", "spatial"]
    options = ["--smooth-labels", "6", "--max-epochs", "20", "--representation", "refined", "--quiet"]
    options += ["--library-key", "slice", "--mnn-neighbors", "0"]
    options += ["--input-features", "counts", "--graph-normalization", "mean", "--input-center", "mean"]
    options += ["--uniform-negatives"]
    assert main([*arguments, *options]) == 0
    result = ad.read_h5ad(out)
    assert result.obs["scrcl"].nunique() == 3 and "scrcl_connectivities" in result.obsp
    assert result.uns["scrcl"]["params"]["representation"] == "refined"
    assert result.uns["scrcl"]["params"]["input_features"] == "counts"
    assert result.uns["scrcl"]["params"]["input_center"] == "mean"
    assert not result.uns["scrcl"]["params"]["balance_negatives"]
    assert not result.uns["scrcl"]["params"]["cluster_components_used"]  # no component input
    assert result.uns["scrcl"]["params"]["graph_normalization_used"] == "mean"
    assert result.uns["scrcl"]["params"]["metric"] == "euclidean"
    assert result.uns["scrcl"]["params"]["library_key"] == "slice"
    assert result.uns["scrcl"]["params"]["mnn_neighbors"] == 0
    left = (result.obs["slice"] == "left").to_numpy()
    assert result.obsp["scrcl_connectivities"][left][:, ~left].nnz == 0  # the slices are not joined
    assert result.obsm["X_scrcl"].shape[1] == 2 * 3  # two refined views of n_clusters columns
    assert "wrote" in capsys.readouterr().out
    assert main([*arguments[:-2], "--spatial-key", "nowhere", "--quiet"]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_scrcl_command_with_batches(tmp_path, capsys):
    source, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    adata = ac.datasets.simulate(200, 100, 2, n_markers=20)
    adata.obs["sample"] = np.repeat(["s1", "s2"], 100)
    adata.write_h5ad(source)
    arguments = ["--n-clusters", "2", "--batch-key", "sample", "--max-epochs", "5", "--quiet"]
    assert main(["scrcl", str(source), "-o", str(out), *arguments]) == 0, capsys.readouterr().err
    assert ad.read_h5ad(out).uns["scrcl"]["params"]["batch_key"] == "sample"


def test_resolution_reaches_leiden_without_n_clusters(tmp_path, capsys):
    source = tmp_path / "in.h5ad"
    ac.datasets.simulate(300, 100, 4, n_markers=20).write_h5ad(source)
    found = {}
    for resolution in ("0.05", "3"):
        out = tmp_path / f"out_{resolution}.h5ad"
        arguments = ["--resolution", resolution, "--max-epochs", "20", "--quiet"]
        assert main(["scrcl", str(source), "-o", str(out), *arguments]) == 0, capsys.readouterr().err
        result = ad.read_h5ad(out)
        assert result.uns["scrcl"]["params"]["resolution"] == float(resolution)
        found[resolution] = result.obs["scrcl"].nunique()
    assert found["3"] > found["0.05"]


def test_bgformer_model_options_reach_the_model(tmp_path, capsys):
    source = tmp_path / "in.h5ad"
    ac.datasets.simulate(300, 100, 3, n_markers=20).write_h5ad(source)
    out = tmp_path / "out.h5ad"
    arguments = ["--n-clusters", "3", "--dec-weight", "0.01", "--center-init", "merged", "--max-epochs", "2", "--quiet"]
    assert main(["bgformer", str(source), "-o", str(out), *arguments]) == 0, capsys.readouterr().err
    params = ad.read_h5ad(out).uns["bgformer"]["params"]
    assert params["dec_weight"] == 0.01 and params["center_init"] == "merged"
    with pytest.raises(SystemExit):  # argparse refuses a choice that does not exist
        main(["bgformer", str(source), "-o", str(out), "--center-init", "leiden"])


def test_scrcl_center_init_option_reaches_the_model(tmp_path, capsys):
    source, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    ac.datasets.simulate(300, 100, 3, n_markers=20).write_h5ad(source)
    arguments = ["--n-clusters", "3", "--center-init", "merged", "--max-epochs", "2", "--quiet"]
    assert main(["scrcl", str(source), "-o", str(out), *arguments, "--cluster-embedding-only"]) == 0, (
        capsys.readouterr().err
    )
    params = ad.read_h5ad(out).uns["scrcl"]["params"]
    assert params["center_init"] == params["center_start"] == "merged"
    assert not params["cluster_components"] and not params["cluster_components_used"]


def test_center_init_defaults_named_in_the_help_are_the_models():
    import inspect

    for name, model in (("bgformer", ac.models.BGFormer), ("scrcl", ac.models.SCRCL)):
        default = inspect.signature(model).parameters["center_init"].default
        assert DEFAULT_CENTER_INITS[name] == default


@pytest.mark.parametrize(("value", "n_used"), [(None, 2000), ("all", 2500), ("300", 300)])
def test_n_top_genes_option_chooses_how_many_genes_the_model_reads(tmp_path, capsys, value, n_used):
    source, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    ac.datasets.simulate(200, 2500, 2, n_markers=20).write_h5ad(source)
    arguments = ["--n-clusters", "2", "--max-epochs", "1", "--quiet"]
    arguments += [] if value is None else ["--n-top-genes", value]
    assert main(["bgformer", str(source), "-o", str(out), *arguments]) == 0, capsys.readouterr().err
    result = ad.read_h5ad(out).uns["bgformer"]
    assert len(result["genes"]) == n_used
    assert result["params"]["n_top_genes"] == (None if value == "all" else n_used)


@pytest.mark.parametrize("value", ["0", "-5", "many", "2.5"])
def test_n_top_genes_option_refuses_what_is_not_a_count_or_all(tmp_path, capsys, value):
    with pytest.raises(SystemExit):  # argparse: the message names the value
        main(["bgformer", str(tmp_path / "in.h5ad"), "-o", str(tmp_path / "out.h5ad"), "--n-top-genes", value])
    assert "positive integer or 'all'" in capsys.readouterr().err


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"atlasclust {version('atlasclust')}"


@pytest.mark.parametrize(("mask_var", "n_used"), [(None, 40), ("none", 120), ("mine", 10)])
def test_mask_var_option_chooses_the_genes(tmp_path, capsys, mask_var, n_used):
    source, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    adata = ac.datasets.simulate(200, 120, 2, n_markers=20)
    adata.var["highly_variable"] = np.arange(120) < 40  # the default when present, as in sc.pp.pca
    adata.var["mine"] = np.arange(120) >= 110
    adata.write_h5ad(source)
    arguments = ["--n-clusters", "2", "--max-epochs", "1", "--quiet"]
    arguments += [] if mask_var is None else ["--mask-var", mask_var]
    assert main(["bgformer", str(source), "-o", str(out), *arguments]) == 0, capsys.readouterr().err
    assert len(ad.read_h5ad(out).uns["bgformer"]["genes"]) == n_used


def test_errors_name_the_command_line_flags(tmp_path, capsys):
    source = tmp_path / "in.h5ad"
    adata = ac.datasets.simulate(100, 50, 2)
    adata.X = adata.X.astype(np.float32) / 3  # not counts
    adata.write_h5ad(source)
    assert main(["scrcl", str(source), "-o", str(tmp_path / "out.h5ad"), "--mask-var", "hvg"]) == 1
    error = capsys.readouterr().err
    assert "`--mask-var hvg` is not a column of adata.var" in error and "mask_var=" not in error
    assert main(["scrcl", str(source), "-o", str(tmp_path / "out.h5ad")]) == 1
    error = capsys.readouterr().err
    assert "`--layer counts`" in error and "layer=" not in error


def test_help_answers_without_importing_torch_and_shows_plain_text():
    code = (
        "import sys, contextlib, io\n"
        "from atlasclust.cli import main\n"
        "for command in ([], ['bgformer'], ['scrcl'], ['demo']):\n"
        "    with contextlib.suppress(SystemExit):\n"
        "        main([*command, '--help'])\n"
        "print('heavy:', sorted(m for m in ('torch', 'scvi', 'scanpy', 'anndata', 'lightning') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "heavy: []" in run.stdout
    assert "``" not in run.stdout and ":func:" not in run.stdout  # no raw reStructuredText
    assert "--mask-var" in run.stdout
