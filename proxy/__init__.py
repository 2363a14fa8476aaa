"""format-proxy: an S3 sidecar that translates documents between XML and JSON."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("format-proxy")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"
