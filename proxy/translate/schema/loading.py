"""Schema compilation, loading: reading schema files (JSON/YAML) and resolving ``$ref`` through
a `referencing` registry that retrieves local files only, never the network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import referencing.exceptions
import referencing.jsonschema
import yaml
from referencing import Registry, Resource

from proxy.errors import MappingError
from proxy.translate.schema.base import (
    DIALECTS,
    Loc,
)


class SchemaLoader:
    """Load the main schema and the documents it references; resolve ``$ref``."""

    def __init__(self, *, base_dir: Path, key_path: str) -> None:
        self.base_dir = base_dir
        self.key_path = key_path
        self._docs: dict[str, str] = {}  # doc URI -> display name
        self._doc_files: dict[str, Path] = {}
        self._main_dir: Path = base_dir
        self._main_base: str | None = None

    def _load_file(self, path: Path, where: str) -> Any:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingError(
                where, f"cannot read schema '{path}': {exc.strerror or exc}"
            ) from None
        try:
            if path.suffix in (".yaml", ".yml"):
                return yaml.safe_load(text)
            return json.loads(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise MappingError(where, f"'{path}' is not valid JSON/YAML: {exc}") from None

    def load_root(self, rel: str) -> tuple[Any, Registry[Any], Loc, Any]:
        where = f"{self.key_path}.schema"
        path = (self.base_dir / rel).resolve()
        contents = self._load_file(path, where)
        if not isinstance(contents, dict | bool):
            raise MappingError(where, "the schema must be a JSON object")
        if isinstance(contents, dict):
            dialect = contents.get("$schema")
            if dialect is not None and dialect not in DIALECTS:
                raise MappingError(
                    f"{where}#/$schema",
                    f"unsupported dialect {dialect!r}: JSON Schema draft 2020-12 only",
                )
        file_uri = path.as_uri()
        uri = file_uri
        if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
            uri = urljoin(file_uri, contents["$id"])
        uri = urldefrag(uri)[0]
        self._main_base = uri
        self._main_dir = path.parent
        self._docs[uri] = where
        self._docs[file_uri] = where
        self._doc_files[uri] = path
        resource = Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012
        )
        # attrs' private field ``_retrieve`` takes ``retrieve=``: mypy's attrs plugin misses it.
        registry: Registry[Any] = Registry(retrieve=self._retrieve).with_resource(  # type: ignore[call-arg]
            uri, resource
        )
        if file_uri != uri:
            registry = registry.with_resource(file_uri, resource)
        registry = registry.crawl()
        return contents, registry, Loc(where, "", uri), registry.resolver(base_uri=uri)

    def _retrieve(self, uri: str) -> Resource[Any]:
        """Local files only: ``file:`` URIs, or URIs under the main schema's ``$id`` mapped to
        the main schema's directory. Never the network."""
        path: Path | None = None
        parts = urlsplit(uri)
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
        elif self._main_base and uri.startswith(self._main_base.rsplit("/", 1)[0] + "/"):
            rel = uri[len(self._main_base.rsplit("/", 1)[0]) + 1 :]
            path = (self._main_dir / unquote(rel)).resolve()
        if path is None or not path.is_file():
            raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs
        contents = self._load_file(path, f"{self.key_path}.schema")
        try:
            name = str(path.relative_to(self.base_dir))
        except ValueError:
            name = str(path)
        self._docs.setdefault(uri, name)
        return Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012
        )

    def lookup(self, ref: object, loc: Loc, resolver: Any) -> tuple[Any, Loc, Any]:
        where = str(loc.child("$ref"))
        if not isinstance(ref, str):
            raise MappingError(where, f"$ref must be a string, got {ref!r}")
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            detail = (
                str(exc) if not isinstance(exc, referencing.exceptions.PointerToNowhere) else ""
            )
            raise MappingError(
                where, f"$ref {ref!r} does not resolve" + (f": {detail}" if detail else "")
            ) from None
        target = urljoin(loc.base, ref)
        doc, frag = urldefrag(target)
        display = self._docs.get(doc, doc)
        pointer = unquote(frag) if frag.startswith("/") or frag == "" else f"(anchor {frag})"
        return resolved.contents, Loc(display, pointer, doc), resolved.resolver
