"""Sphinx configuration (built with ``sphinx-build -W -b html docs docs/_build``)."""

from importlib import metadata

project = "atlasclust"
author = "atlasclust developers"
copyright = "2026, atlasclust developers"
release = metadata.version("atlasclust")
version = release
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "sphinxcontrib.bibtex",
]
autosummary_generate = True
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False  # a Returns entry renders as "type – description", not a separate "Return type"
typehints_document_rtype = False
bibtex_bibfiles = ["references.bib"]
bibtex_reference_style = "author_year"
# the tutorials are committed with their outputs and executed by the test suite, not here
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
default_role = "literal"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
templates_path = ["_templates"]
html_title = "atlasclust"
# no intersphinx: the docs build offline; cross-references to other projects render as plain names
