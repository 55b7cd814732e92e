import re

import atlasclust as ac


def test_one_bar_counts_both_phases_of_a_bgformer_run(capsys):
    adata = ac.datasets.simulate(150, 60, 2, random_state=0)
    ac.tl.bgformer(adata, 2, n_latent=16, n_anchors=8, max_epochs=5, enable_progress_bar=True)
    printed = capsys.readouterr().out.replace("\r", "\n")
    assert "Epoch 1/" not in printed  # no bar of scvi-tools' per fit
    assert "pretrain epoch 1/5" in printed and "cluster epoch 5/5" in printed  # one count over the run
    totals = set(re.findall(r"\| \d+/(\d+) \[", printed))
    assert totals == {"5"}
    assert "5/5 [" in printed and "train_loss=" in printed


def test_no_bar_without_enable_progress_bar(capsys):
    adata = ac.datasets.simulate(150, 60, 2, random_state=0)
    ac.tl.bgformer(adata, 2, n_latent=16, n_anchors=8, max_epochs=3, enable_progress_bar=False)
    assert "epoch" not in capsys.readouterr().out
