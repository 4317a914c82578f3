"""Event envelope, subjects and payload models of opsbus. Pure: no I/O, safe for planners."""

from opsbus.common.events.envelope import (
    CONTENT_TYPE,
    Envelope,
    EventPayload,
    ObjectRef,
    new_event_id,
    parse_type,
)
from opsbus.common.events.subjects import Subject, SubjectError, dlq_subject, subject_for

__all__ = [
    "CONTENT_TYPE",
    "Envelope",
    "EventPayload",
    "ObjectRef",
    "Subject",
    "SubjectError",
    "dlq_subject",
    "new_event_id",
    "parse_type",
    "subject_for",
]
