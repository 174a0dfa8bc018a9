"""Rows in and out of files: JSONL/CSV uploads validated line by line (instruction/input/output or prompt/completion),
and JSONL downloads in either format."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from core.errors import StudioError
from core.datasets.rows import FORMATS, make_row

@dataclass
class ValidationReport:
    """What an upload or an edit looks like: the good rows plus line-numbered problems."""

    rows: list[dict] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (1-based line, message)
    duplicates: int = 0
    too_long: list[int] = field(default_factory=list)  # lines whose prompt+output exceed max_length tokens
    max_length: int = 0
    total_lines: int = 0
    detected_format: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    def summary(self) -> str:
        parts = [f"{len(self.rows)} valid rows"]
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicates removed")
        if self.too_long:
            parts.append(f"{len(self.too_long)} rows longer than {self.max_length} tokens (they will be truncated)")
        return ", ".join(parts)


# ---------------------------------------------------------------- import and validation
def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _to_row(record: Any) -> tuple[dict | None, str | None, str]:
    """(row, error, format) for one parsed record."""
    if not isinstance(record, dict):
        return None, "not an object with fields", ""
    if "prompt" in record or "completion" in record:
        fmt, needed = "prompt_completion", ("prompt", "completion")
    else:
        fmt, needed = "instruction", ("instruction", "output")
    missing = [name for name in needed if name not in record or record[name] is None]
    if missing:
        return None, f"missing field {', '.join(repr(m) for m in missing)} (expected {' + '.join(needed)})", fmt
    values = {k: record.get(k) for k in ("instruction", "input", "output", "prompt", "completion")}
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        return None, "fields must be text", fmt
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    if fmt == "prompt_completion":
        if not record["prompt"].strip():
            return None, "empty prompt", fmt
        if not record["completion"].strip():
            return None, "empty output (completion)", fmt
        row = make_row(record["prompt"], "", record["completion"], source)
    else:
        if not record["instruction"].strip():
            return None, "empty instruction", fmt
        if not record["output"].strip():
            return None, "empty output", fmt
        row = make_row(record["instruction"], record.get("input") or "", record["output"], source)
    return row, None, fmt


def validate_rows(
    records: Iterable[tuple[int, Any]],
    max_length: int = 512,
    count_tokens: Callable[[str], int] | None = None,
    initial_errors: Sequence[tuple[int, str]] = (),
) -> ValidationReport:
    """Check (line, record) pairs: fields present, outputs non-empty, duplicates removed, long rows counted."""
    count = count_tokens or _approx_tokens
    report = ValidationReport(max_length=max_length, errors=list(initial_errors))
    seen: set[tuple[str, str, str]] = set()
    formats = set()
    for line, record in records:
        report.total_lines += 1
        row, error, fmt = _to_row(record)
        if error:
            report.errors.append((line, error))
            continue
        formats.add(fmt)
        key = (row["instruction"], row["input"], row["output"])
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        if count(row["prompt"] + "\n" + row["output"]) > max_length:
            report.too_long.append(line)
        row["source"].setdefault("line", line)
        report.rows.append(row)
    report.errors.sort()
    report.detected_format = "/".join(sorted(formats))
    return report


def _decode_lines(data: bytes) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    lines, errors = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            errors.append((number, f"not valid UTF-8 text (byte {error.start + 1}); save the file as UTF-8"))
            continue
        if number == 1:
            text = text.lstrip("\ufeff")
        lines.append((number, text))
    return lines, errors


def parse_upload(
    name: str, data: bytes, max_length: int = 512, count_tokens: Callable[[str], int] | None = None
) -> ValidationReport:
    """Validate an uploaded JSONL or CSV file (instruction/input/output or prompt/completion)."""
    lines, decode_errors = _decode_lines(data)
    records: list[tuple[int, Any]] = []
    errors = list(decode_errors)
    if name.lower().endswith(".csv"):
        text_lines = [text for _, text in lines]
        numbers = [number for number, _ in lines]
        reader = csv.DictReader(io.StringIO("\n".join(text_lines)))
        if not reader.fieldnames:
            raise StudioError(f"{name}: the CSV has no header row; the first line must name the columns.")
        for record in reader:
            physical = numbers[min(reader.line_num, len(numbers)) - 1]
            records.append((physical, {k.strip(): v for k, v in record.items() if k}))
    elif name.lower().endswith((".jsonl", ".json", ".ndjson")):
        for number, text in lines:
            if not text.strip():
                continue
            try:
                records.append((number, json.loads(text)))
            except json.JSONDecodeError as error:
                errors.append((number, f"not valid JSON ({error.msg})"))
    else:
        raise StudioError(f"{name}: upload a .jsonl or .csv file.")
    return validate_rows(records, max_length, count_tokens, errors)


def rows_to_jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def export_rows(rows: Iterable[dict], fmt: str = "instruction") -> str:
    """JSONL in the chosen format (for download): instruction/input/output or prompt/completion."""
    if fmt not in FORMATS:
        raise StudioError(f"Unknown format {fmt!r}; choose {' or '.join(FORMATS)}.")
    keys = ("instruction", "input", "output") if fmt == "instruction" else ("prompt", "completion")
    return rows_to_jsonl({**{k: row[k] for k in keys}, "source": row.get("source", {})} for row in rows)
