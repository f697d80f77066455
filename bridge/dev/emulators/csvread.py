"""A CSV reader that keeps what targets tell apart: whether a field was quoted, and each record's text.

RFC 4180 quoting (a quote doubled inside a quoted field), any one-character
delimiter, LF or CRLF line ends. Python's csv module forgets the quoting,
and ClickHouse reads an unquoted ``\\N`` as NULL but a quoted one as text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Field:
    text: str
    quoted: bool


@dataclass
class Record:
    raw: str  # the record as it stood in the body, without its line end
    fields: list[Field]


def records(text: str, delimiter: str = ",") -> list[Record]:
    """Every record of a CSV body; ValueError on an unterminated quote."""
    out: list[Record] = []
    i, n = 0, len(text)
    while i < n:
        start, fields = i, []
        while True:
            if i < n and text[i] == '"':
                j, parts = i + 1, []
                while True:
                    k = text.find('"', j)
                    if k < 0:
                        raise ValueError(f"unterminated quoted field at {i}")
                    parts.append(text[j:k])
                    if text[k + 1:k + 2] == '"':
                        parts.append('"')
                        j = k + 2
                        continue
                    i = k + 1
                    break
                # Anything between the closing quote and the delimiter is kept, as lenient readers do.
                end = _field_end(text, i, delimiter)
                fields.append(Field("".join(parts) + text[i:end], True))
            else:
                end = _field_end(text, i, delimiter)
                fields.append(Field(text[i:end], False))
            i = end
            if i < n and text[i] == delimiter:
                i += 1
                continue
            break
        raw = text[start:i]
        if text[i:i + 2] == "\r\n":
            i += 2
        elif i < n:
            i += 1  # \n or \r
        out.append(Record(raw, fields))
    return out


def _field_end(text: str, i: int, delimiter: str) -> int:
    """Where an unquoted field (or the rest after a closing quote) ends."""
    ends = [p for p in (text.find(delimiter, i), text.find("\n", i), text.find("\r", i)) if p >= 0]
    return min(ends) if ends else len(text)
