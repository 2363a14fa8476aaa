"""JSON → XML: decode, table walker, generated fast path, streaming, and the translator that
wires them (:class:`JsonToXml`)."""

from proxy.translate.json_to_xml.translator import STREAM_THRESHOLD, JsonToXml

__all__ = ["STREAM_THRESHOLD", "JsonToXml"]
