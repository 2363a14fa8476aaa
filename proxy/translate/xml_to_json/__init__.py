"""XML → JSON: parse, table walker, generated fast path, streaming, and the translator that
wires them (:class:`XmlToJson`)."""

from proxy.translate.xml_to_json.translator import STREAM_THRESHOLD, XmlToJson

__all__ = ["STREAM_THRESHOLD", "XmlToJson"]
