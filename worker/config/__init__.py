"""The routing configuration: one YAML file, validated on load with errors that point at a line.

Pure: parsing and validation only (:mod:`.schema`, with :mod:`.yamlpos` for line numbers).
"""

from worker.config.schema import (
    Assign,
    ConfigError,
    Hours,
    Rep,
    RoutingConfig,
    config_path,
    load_config,
    parse_config,
)

__all__ = ["Assign", "ConfigError", "Hours", "Rep", "RoutingConfig", "config_path", "load_config", "parse_config"]
