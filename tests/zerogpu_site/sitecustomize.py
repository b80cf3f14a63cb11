"""Loaded by every Python started with this folder on PYTHONPATH (the ZeroGPU tests' app.py).

The real `spaces` package runs in ZeroGPU mode, with ONE part replaced: `spaces.zero.torch`, its
CUDA emulation. It cannot run on a CPU-only torch build, in exactly these places:
- `spaces/zero/torch/static.py` runs `torch.version.cuda.startswith(...)` at import, and
  `torch.version.cuda` is None on a CPU build (AttributeError: every `import spaces` fails);
- in each forked worker, `worker_init` calls `torch.init(uuid)` = `torch.Tensor([0]).cuda()` and
  `torch.move()`, which ends in `torch.cuda.synchronize()`: both need a CUDA build and a GPU.
In its place goes the very module `spaces.zero.torch/__init__.py` defines for a machine without torch
(every function a no-op, `pack`/`size` 0, `is_in_bad_fork` False). Everything else is spaces' own
code: the HTTP client to the scheduler, the fork of a worker, the pickling of arguments and results
across its queues, worker reuse, the gradio progress relay, the startup report at launch. What this
cannot show: CUDA emulation in the main process (a model on a fake `cuda` device) and the real
CPU -> GPU move in the worker; the tests run the model on the CPU in both processes.
"""

import importlib.abc
import importlib.machinery
import sys
import types

_NAME = "spaces.zero.torch"


class _NoCudaLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        # the same fallbacks spaces.zero.torch uses when `import torch` fails
        module.enter_mode = lambda *args, **kwargs: None
        module.patch = lambda *args, **kwargs: None
        module.unpatch = lambda *args, **kwargs: None
        module.pack = lambda *args, **kwargs: 0
        module.init = lambda *args, **kwargs: None
        module.size = lambda *args, **kwargs: 0
        module.move = lambda *args, **kwargs: None
        module.is_in_bad_fork = lambda *args, **kwargs: False
        module.__path__ = []  # a package, as the original is


class _NoCudaFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == _NAME:
            return importlib.machinery.ModuleSpec(fullname, _NoCudaLoader(), is_package=True)
        return None


sys.meta_path.insert(0, _NoCudaFinder())
