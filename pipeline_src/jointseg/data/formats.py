"""The data-format adapters by name: one plain dict, the format registry.

Everything that lists formats derives from :data:`FORMATS`: the config schema's
``datasets.<name>.format`` enum (:func:`jointseg.config.schema`), config/README.md,
``jointseg prepare --format`` and the command's help. A new format is its adapter
module (a :class:`~jointseg.data.cases.FormatAdapter` subclass) and one line here.
The adapters read only paths and JSON at import, so the config check stays light.
"""

from __future__ import annotations

from .cases import FormatAdapter
from .isic import IsicFormat
from .msd import MsdFormat
from .nnunet import NnunetFormat

FORMATS: dict[str, type[FormatAdapter]] = {
    "isic": IsicFormat,
    "msd": MsdFormat,
    "nnunet": NnunetFormat,
}
