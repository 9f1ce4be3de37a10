"""``%load_ext llmsock`` loads the llmsock_widget extension."""

from llmsock_widget import load_ipython_extension, unload_ipython_extension

__all__ = ["load_ipython_extension", "unload_ipython_extension"]
