"""Sphinx configuration (built with ``sphinx-build -M html docs docs/_build -W``)."""

from importlib.metadata import version

project = "atlasclust"
author = "atlasclust developers"
release = version("atlasclust")
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
]
autosummary_generate = True
napoleon_numpy_docstring = True
napoleon_google_docstring = False
nb_execution_mode = "off"
default_role = "literal"
exclude_patterns = ["_build"]
html_theme = "sphinx_book_theme"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
}
