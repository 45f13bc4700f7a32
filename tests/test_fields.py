"""The vocabulary: every field, alias and result column written once and consistently."""

from __future__ import annotations

from bulk_chats.fields import (
    ALIASES,
    CUSTOMER_SEARCH_FIELDS,
    FIELD_NAMES,
    ID_FIELDS,
    RESOLVED_COLUMNS,
    RESULT_COLUMNS,
    STANDS_FOR,
    names_for,
)


def test_aliases_name_fields_and_never_shadow_one() -> None:
    """Every alias leads to a field, and no alias is itself a field's or a result's name."""
    assert set(ALIASES.values()) <= set(FIELD_NAMES)
    assert not set(ALIASES) & (set(FIELD_NAMES) | set(RESULT_COLUMNS))
    assert len(FIELD_NAMES) == len(set(FIELD_NAMES))


def test_name_fields_stand_in_for_id_fields() -> None:
    """Each name field stands in for an id field; the customer's email is looked up first."""
    assert set(STANDS_FOR.values()) <= set(ID_FIELDS)
    assert names_for("customer") == ("customer_email", "customer_user_id")
    assert names_for("application") == ()
    assert CUSTOMER_SEARCH_FIELDS == {"customer_email": "email", "customer_user_id": "userId"}


def test_result_columns_end_with_one_resolved_column_per_named_id_field() -> None:
    """A resolved_* column exists for exactly the id fields some name column stands in for."""
    assert RESOLVED_COLUMNS == {
        "resolved_customer": "customer",
        "resolved_assignee": "assignee",
        "resolved_department": "department",
        "resolved_message_agent": "message_agent",
    }
    assert RESULT_COLUMNS[-len(RESOLVED_COLUMNS) :] == tuple(RESOLVED_COLUMNS)
