"""otel-sysops: an OpenTelemetry-native host monitoring agent."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("otel-sysops")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
