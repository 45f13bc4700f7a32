"""The page's column mapping, changed from either side: a field given a column (the
select of each field) or a column given a field (the select beside each of the file's
columns). Both come down to the `--column` choices the loader reads
(`Upload.columns`, field → header; an empty header reads the field from no column).

A column feeds one field. A field already read from another column is never moved
silently: mapping a column to it is refused, saying which column has it.
"""

from __future__ import annotations

from collections.abc import Mapping

from bulk_chats.ui.preview import Preview


class MappingRefused(Exception):
    """A change of the mapping that would move a field without saying so; the message
    says what to do instead, in the page's words."""


def give_field(columns: Mapping[str, str], field: str, header: str) -> dict[str, str]:
    """The choices once `field` is read from the column headed `header` ("": from no
    column, even one whose header names it). Another field chosen for that column gives
    it up; the field's own select shows where it moved from."""
    chosen = {name: h for name, h in columns.items() if not (header and h == header)}
    chosen[field] = header
    return chosen


def give_column(
    columns: Mapping[str, str], preview: Preview, header: str, field: str
) -> dict[str, str]:
    """The choices once the column headed `header` is read as `field` ("": as no field:
    it is copied to the results untouched). Raises `MappingRefused` when `field` is read
    from another column: taking it from there is the user's choice to make."""
    reading = [name for name, h in preview.mapping.items() if h == header]
    if not field:
        return {**columns, **dict.fromkeys(reading, "")}
    if field in reading:
        return dict(columns)
    elsewhere = preview.mapping.get(field)
    if elsewhere is not None:
        raise MappingRefused(
            f"{field} is read from {elsewhere} already: choose (not read) for {elsewhere} "
            f"first, or another field for {header}"
        )
    chosen = {name: h for name, h in columns.items() if name not in reading}
    chosen[field] = header
    return chosen
