import inspect

import atlasclust as ac
from atlasclust.tl._docs import _DOCS, doc_params


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


def test_both_tools_show_the_same_text_for_what_they_share():
    for name, text in _DOCS.items():
        block = inspect.cleandoc("\n" + text.replace("\n", "\n    "))  # as it reads in a docstring
        first_line = block.splitlines()[0]
        for tool in (ac.tl.bgformer, ac.tl.scrcl):
            doc = inspect.cleandoc(tool.__doc__)
            assert "{doc_" not in doc
            assert first_line in doc, (name, tool.__name__)
            assert text.splitlines()[1].strip() in doc, (name, tool.__name__)
