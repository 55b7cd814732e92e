import inspect

import atlasclust as ac
from atlasclust._docs import _DOCS, doc_params


def test_placeholders_are_filled_indented_and_other_braces_kept():
    @doc_params(doc_extra="extra\n    The extra one.")
    def tool(adata, extra):
        """Do it ``{like: this}``.

        Parameters
        ----------
        {doc_adata}
        {doc_extra}
        """

    doc = inspect.cleandoc(tool.__doc__)
    assert "{like: this}" in doc  # not a placeholder: left as it is
    assert "adata\n    Annotated data with raw counts" in doc
    assert "extra\n    The extra one." in doc and "{doc_" not in doc


def _reads(text: str) -> tuple[str, str]:
    """The first two lines of a shared entry, as they read in a docstring."""
    block = inspect.cleandoc("\n" + text.replace("\n", "\n    "))
    return block.splitlines()[0], text.splitlines()[1].strip()


#: Each shared entry and the objects whose docstrings show it.
SHARED_BY = {
    "doc_adata": (ac.tl.bgformer, ac.tl.scrcl),
    "doc_layer": (ac.tl.bgformer, ac.tl.scrcl),
    "doc_devices": (ac.tl.bgformer, ac.tl.scrcl),
    "doc_genes": (ac.tl.bgformer, ac.tl.scrcl),
    "doc_run": (ac.tl.bgformer, ac.tl.scrcl),
    "doc_model_genes": (ac.models.BGFormer, ac.models.SCRCL),
    "doc_registry": (ac.models.BGFormer, ac.models.SCRCL),
    "doc_count_noise": (ac.datasets.simulate, ac.datasets.simulate_tissue),
}


def test_every_shared_text_is_filled_in_and_reads_the_same_in_each_object_that_shares_it():
    assert set(SHARED_BY) == set(_DOCS)  # no entry is dead text, and each new one names its users
    for obj in {obj for objects in SHARED_BY.values() for obj in objects}:
        assert "{doc_" not in obj.__doc__, obj.__name__
    for name, objects in SHARED_BY.items():
        first_line, second_line = _reads(_DOCS[name])
        for obj in objects:
            doc = inspect.cleandoc(obj.__doc__)
            assert first_line in doc and second_line in doc, (name, obj.__name__)
