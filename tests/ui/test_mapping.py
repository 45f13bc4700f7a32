"""The column mapping changed from either side: a field given a column, a column given a
field; a field another column gives is never moved without saying so."""

from __future__ import annotations

import pytest

from bulk_chats.ui.mapping import MappingRefused, give_column, give_field
from bulk_chats.ui.preview import Preview

DETECTED = Preview(
    headers=("Customer ID", "Application", "Agent ID", "Owner"),
    mapping={"customer": "Customer ID", "application": "Application", "assignee": "Agent ID"},
)
"""A sheet whose headers name three fields; Owner is read as none."""


def test_a_field_given_a_column_takes_it_from_the_field_that_had_it() -> None:
    """The field's own select: the field reads the column, and a field chosen for that
    column before gives it up; an empty header reads the field from no column."""
    chosen = give_field({"assignee_email": "Owner"}, "assignee", "Owner")
    assert chosen == {"assignee": "Owner"}
    assert give_field({}, "assignee", "") == {"assignee": ""}


def test_a_column_given_a_free_field_reads_as_it() -> None:
    """A column given a field no column gives reads as it; the field it was read as
    before (here customer, from its header) is left to the rest of the sheet."""
    assert give_column({}, DETECTED, "Owner", "department") == {"department": "Owner"}
    assert give_column({}, DETECTED, "Customer ID", "customer_email") == {
        "customer_email": "Customer ID"
    }


def test_a_column_given_no_field_unreads_even_a_detected_one() -> None:
    """ "(not read)" for a column, its header's field or one chosen: read from no column."""
    assert give_column({}, DETECTED, "Agent ID", "") == {"assignee": ""}
    owner = Preview(headers=DETECTED.headers, mapping={"assignee": "Owner"})
    assert give_column({"assignee": "Owner"}, owner, "Owner", "") == {"assignee": ""}


def test_a_field_another_column_gives_is_refused_out_loud() -> None:
    """Choosing assignee for Owner while Agent ID gives it is refused, naming both; the
    mapping stays as it was."""
    with pytest.raises(MappingRefused) as refused:
        give_column({}, DETECTED, "Owner", "assignee")
    assert str(refused.value) == (
        "assignee is read from Agent ID already: choose (not read) for Agent ID first, or "
        "another field for Owner"
    )


def test_a_column_given_the_field_it_has_changes_nothing() -> None:
    """The field a column already reads as, chosen again: nothing moves."""
    assert give_column({"x": "y"}, DETECTED, "Agent ID", "assignee") == {"x": "y"}
