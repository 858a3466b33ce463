"""Loaded at interpreter start when this directory leads PYTHONPATH (`helpers.env`): TensorFlow
looks absent, as to `import` (which raises ModuleNotFoundError) so to
`importlib.util.find_spec` (None), which libraries such as etils use to decide whether to use
it."""

import sys

for name in ("tensorflow", "tensorflow_datasets"):
    sys.modules[name] = None
