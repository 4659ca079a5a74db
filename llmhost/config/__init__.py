"""models.toml: the routing table users edit, validated once at load and frozen.

A bad file must produce one clear paragraph naming the file, the route and the key,
never a traceback: `ConfigError` carries that text and `llmhost check` prints it.

The schema is in `host` ([host], [search]) and `route` ([routes.NAME] and its
sub-tables); `catalog` parses and cross-checks the whole file; `explain` turns
validation errors into that paragraph.
"""

from llmhost.config.base import ConfigError
from llmhost.config.catalog import Catalog, load_catalog, parse_catalog
from llmhost.config.host import HostConfig, SearchConfig
from llmhost.config.route import RESERVED_ROUTE_NAMES, PipelineConfig, RouteConfig, ServingConfig

__all__ = [
    "RESERVED_ROUTE_NAMES",
    "Catalog",
    "ConfigError",
    "HostConfig",
    "PipelineConfig",
    "RouteConfig",
    "SearchConfig",
    "ServingConfig",
    "load_catalog",
    "parse_catalog",
]
