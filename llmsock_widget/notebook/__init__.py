"""The IPython/Jupyter surface: the kernel's runtime, the chat widget, magics, ``ask()`` and the
.ipynb tools.  The top layer: it may import everything else, nothing imports it (except the
package's lazy public API and the command line).
"""
