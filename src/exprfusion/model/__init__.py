"""The fusion model: FusionConfig, the paper's blocks, FusionTransformer, feature standardisation, linear experts,
artefact I/O.

``from exprfusion.model import FusionConfig, FusionTransformer`` is the public path; the library itself imports each
name from the module that defines it.
"""

from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer

__all__ = ["FusionConfig", "FusionTransformer"]
