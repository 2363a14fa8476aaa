"""Compile a route mapping — JSON Schema 2020-12 with OpenAPI ``xml`` objects, plus inline
options — into the rule graph of :mod:`proxy.translate.rules`. Split by job: loading and
``$ref`` resolution, merging into views, rule building, namespace binding."""

from proxy.translate.schema.base import Compiled
from proxy.translate.schema.building import SchemaCompiler

__all__ = ["Compiled", "SchemaCompiler"]
