from rest_framework.renderers import JSONRenderer

from purchases_project import jsonutil


class DecimalJSONRenderer(JSONRenderer):
    """DRF's JSON renderer, writing decimals as exact JSON numbers (orjson underneath)."""

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return jsonutil.dumps(data, indent=bool(self.get_indent(accepted_media_type, renderer_context or {})))
