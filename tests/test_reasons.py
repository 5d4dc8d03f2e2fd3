"""The reason vocabulary is a published contract (docs/reasons.md): every number keeps
its name forever, the page agrees with the C table line by line, and every tool reports
both name and number."""
from __future__ import annotations

import re
from pathlib import Path

from ministack.binding import lib
from ministack.switch import REASON_CODES, REASON_KINDS, REASONS, reason_sentence

DOC = Path(__file__).resolve().parent.parent / "docs" / "reasons.md"

# As first published. A change here breaks every script that matched on a number: add a
# reason at the next number instead.
PUBLISHED = {0: "ok", 1: "malformed", 2: "oversize", 3: "spoofed-src-mac", 4: "vlan",
             5: "not-allowed", 6: "fragment", 7: "unsupported-header", 8: "spoofed-src-ip",
             9: "spoofed-protocol", 10: "spoofed-src-port", 11: "ring-full",
             12: "no-binding", 13: "local", 14: "to-host"}


def doc_rows() -> dict[int, tuple[str, str, str]]:
    rows = re.findall(r"^\| (\d+) \| `([a-z-]+)` \| ([a-z-]+) \| ([^|]+) \|", DOC.read_text(),
                      re.MULTILINE)
    return {int(n): (name, kind, sentence.strip()) for n, name, kind, sentence in rows}


def test_published_numbers_keep_their_names() -> None:
    for number, name in PUBLISHED.items():
        assert REASONS[number] == name, (number, REASONS[number])
    assert REASON_CODES == {name: n for n, name in enumerate(REASONS)}


def test_the_page_is_the_c_table() -> None:
    rows = doc_rows()
    assert sorted(rows) == list(range(lib.MS_R_COUNT)), "every number has its row"
    for number, (name, kind, sentence) in rows.items():
        assert name == REASONS[number], number
        assert kind == REASON_KINDS[number], (number, kind)
        assert sentence == reason_sentence(number), (number, sentence)
    assert lib.ms_reason_kind(lib.MS_R_COUNT) == -1


def test_everything_is_derived_from_the_one_table() -> None:
    """The rows of ms_reasons.h are the enum (as cffi declares it, checked against C by
    the compiler), and decide which counters show each drop."""
    from ministack._build import NATIVE, reason_rows
    from ministack.switch import NIC_DROP_REASONS, PORT_DROP_REASONS, Switch

    rows = reason_rows((NATIVE / "include" / "ms_reasons.h").read_text())
    assert [n for n, _ in rows] == list(range(lib.MS_R_COUNT))
    for n, ident in rows:
        assert getattr(lib, f"MS_R_{ident}") == n
    checks = [r for r in PORT_DROP_REASONS if lib.ms_reason_counted(REASON_CODES[r]) ==
              lib.MS_COUNTED_CHECK]
    assert checks == REASONS[1:11]  # DESIGN.md's order, numbered as published
    with Switch() as sw:
        sw.port("p")
        st = sw.stats()
    assert list(st["ports"]["p"]["drops"]) == PORT_DROP_REASONS
    assert list(st["nic"]["drops"]) == NIC_DROP_REASONS


def test_explain_sentences_come_from_the_table_and_name_only_known_fields() -> None:
    """Each verdict a port's frame can get has a tx template, each one a frame from the
    network can get an rx template, and every {field} in them is one explain() fills (the
    list in ms_reasons.h): a typo in a row fails here, not in a student's notebook."""
    import string

    from ministack.switch import reason_detail

    known = {"port", "held", "proto", "src", "dst", "sport", "dport", "len", "src_mac",
             "nic_mac", "note", "where", "to", "why"}
    tx = {"ok", "malformed", "oversize", "spoofed-src-mac", "vlan", "not-allowed", "fragment",
          "unsupported-header", "spoofed-src-ip", "spoofed-protocol", "spoofed-src-port"}
    rx = {"ok", "oversize", "no-binding", "to-host"}
    for code, name in enumerate(REASONS):
        for is_rx, needed in ((False, tx), (True, rx)):
            template = reason_detail(code, rx=is_rx)
            assert bool(template) or name not in needed, (name, is_rx)
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            assert fields <= known, (name, is_rx, fields - known)
