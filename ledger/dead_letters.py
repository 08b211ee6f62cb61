"""The dead-letter header scheme, shared by the consumer and `replay_dlq`.

A dead letter keeps the event's key, value and headers, and adds why it was set
aside (`dlq-reason`) and where it came from (`dlq-topic`, `dlq-partition`,
`dlq-offset`). A replayed event drops the `dlq-` headers and gains
`dlq-replayed-from` (`<partition>:<offset>` in the dead-letter topic).
"""

from confluent_kafka import Message

PREFIX = "dlq-"
REASON = "dlq-reason"
REPLAYED_FROM = "dlq-replayed-from"

Headers = list[tuple[str, bytes]]


def original_headers(message: Message) -> Headers:
    """The message's headers without any of this scheme's."""
    return [(k, v) for k, v in (message.headers() or []) if not k.startswith(PREFIX)]


def dead_letter_headers(message: Message, reason: str) -> Headers:
    """The original headers plus where the event came from and why it was set aside."""
    return [
        *original_headers(message),
        (REASON, reason.encode()),
        ("dlq-topic", message.topic().encode()),
        ("dlq-partition", str(message.partition()).encode()),
        ("dlq-offset", str(message.offset()).encode()),
    ]


def replayed_headers(dead_letter: Message) -> Headers:
    """The headers an event replayed from `dead_letter` travels with."""
    origin = f"{dead_letter.partition()}:{dead_letter.offset()}".encode()
    return [*original_headers(dead_letter), (REPLAYED_FROM, origin)]


def request_id_of(message: Message) -> str | None:
    for key, value in message.headers() or []:
        if key == "x-request-id" and value:
            return value.decode(errors="replace")
    return None
