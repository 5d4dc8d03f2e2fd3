"""IP protocol names and numbers as bind() accepts them."""
from __future__ import annotations

NAMES: dict[str, int] = {
    "icmp": 1,
    "igmp": 2,
    "ipip": 4,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
    "udp-lite": 136,
}
NUMBERS: dict[int, str] = {}
for _name, _num in NAMES.items():
    NUMBERS.setdefault(_num, _name)


def protocol_number(proto: str | int) -> int | None:
    """The IP protocol number for a name or number, or None when unknown.

    >>> protocol_number("udp"), protocol_number(253), protocol_number("132")
    (17, 253, 132)
    """
    if isinstance(proto, bool):
        return None
    if isinstance(proto, int):
        return proto if 0 <= proto <= 255 else None
    if isinstance(proto, str):
        p = proto.strip().lower()
        if p.isdigit():
            n = int(p)
            return n if 0 <= n <= 255 else None
        return NAMES.get(p)
    return None


def protocol_name(number: int) -> str:
    """The usual name of a protocol number, or the number as text.

    >>> protocol_name(17), protocol_name(253)
    ('udp', '253')
    """
    return NUMBERS.get(number, str(number))
