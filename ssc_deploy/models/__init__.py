"""The model zoo: SSC-Nets and the nets they are judged against, registered by name.

>>> from ssc_deploy.models import create_model
>>> net = create_model("ssc-net-3-9", num_classes=10)
"""

from .registry import create_model, list_models, model_family, register_model, registry_entries

# Importing a family module registers its names.
from . import ssc_net, mobilenetv2, igcv3, shift_resnet, resnet, channel_sparse  # noqa: F401,E402

__all__ = ["create_model", "list_models", "model_family", "register_model", "registry_entries"]
