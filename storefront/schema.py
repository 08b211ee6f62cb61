"""OpenAPI for `POST /buy`, which is a plain Django view (the hot path) that
drf-spectacular cannot see: a postprocessing hook adds it to the storefront's
document, so the docs UI can send purchases and clients can be generated. The
request's schema is the rules' own (`purchases_project.rules`)."""

from purchases_project.rules import IDEMPOTENCY_KEY_SCHEMA, PURCHASE_REQUEST_SCHEMA

ERROR = {"$ref": "#/components/schemas/Error"}

PURCHASE_CREATED = {
    "type": "object",
    "required": ["status", "message", "data"],
    "properties": {
        "status": {"type": "string", "enum": ["success"]},
        "message": {"type": "string", "example": "Purchase recorded"},
        "data": {
            "type": "object",
            "required": ["purchase_id", "username", "userid", "price", "timestamp"],
            "properties": {
                "purchase_id": {"type": "string", "format": "uuid"},
                "username": {"type": "string"},
                "userid": {"type": "string"},
                "price": {"type": "number", "description": "Exact, two places", "example": 29.99},
                "timestamp": {
                    "type": "string",
                    "format": "date-time",
                    "example": "2026-01-15T10:30:00.123456Z",
                },
            },
        },
    },
}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def add_purchase_create(result: dict, generator, request, public) -> dict:
    """Postprocessing hook: describe POST /buy."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error", {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    )
    result["components"].setdefault("securitySchemes", {}).setdefault(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    schemas["PurchaseRequest"] = PURCHASE_REQUEST_SCHEMA
    schemas["PurchaseCreated"] = PURCHASE_CREATED
    result.setdefault("paths", {})["/buy"] = {
        "post": {
            "operationId": "buy_create",
            "summary": "Record a purchase",
            "description": (
                "Validates the purchase, stamps it with a UTC time and a purchase_id, and answers "
                "201 once the broker has acknowledged the event. A 503 does not prove the purchase "
                "was not stored: retry with the same Idempotency-Key. The customer is the bearer "
                "token's: the body's userid must be theirs."
            ),
            "tags": ["buy"],
            "security": [{"bearerAuth": []}],
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": IDEMPOTENCY_KEY_SCHEMA,
                    "description": "A retry with the same key and userid gets the same purchase_id",
                },
                {
                    "name": "X-Request-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Echoed back; made when absent",
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PurchaseRequest"}}},
            },
            "responses": {
                "201": {
                    "description": "Recorded: the broker acknowledged the event",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/PurchaseCreated"}}
                    },
                },
                "400": _error("Invalid purchase (the error says which rule)"),
                "401": _error("No bearer token, or one that fails verification (see WWW-Authenticate)"),
                "403": _error("The userid is not the authenticated customer's"),
                "413": _error("Body larger than 64 KiB"),
                "415": _error("Content type other than JSON"),
                "503": _error("The broker did not acknowledge in time, or tokens cannot be verified now"),
            },
        }
    }
    return result
