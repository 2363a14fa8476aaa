from datetime import UTC, datetime

import pytest

from proxy.s3.conditional import Outcome, evaluate, has_conditions

ETAG = '"abc123"'
LM = datetime(2026, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)
BEFORE = "Fri, 01 May 2026 11:00:00 GMT"
SAME = "Fri, 01 May 2026 12:00:00 GMT"
AFTER = "Fri, 01 May 2026 13:00:00 GMT"


def run(**headers):
    return evaluate(
        {k.replace("_", "-"): v for k, v in headers.items()}, etag=ETAG, last_modified=LM
    )


@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        ({}, Outcome.PROCEED),
        ({"if_match": ETAG}, Outcome.PROCEED),
        ({"if_match": "abc123"}, Outcome.PROCEED),  # unquoted, as some clients send it
        ({"if_match": '"x", "abc123"'}, Outcome.PROCEED),
        ({"if_match": "*"}, Outcome.PROCEED),
        ({"if_match": '"other"'}, Outcome.PRECONDITION_FAILED),
        ({"if_none_match": ETAG}, Outcome.NOT_MODIFIED),
        ({"if_none_match": 'W/"abc123"'}, Outcome.NOT_MODIFIED),
        ({"if_none_match": '"other"'}, Outcome.PROCEED),
        ({"if_modified_since": SAME}, Outcome.NOT_MODIFIED),
        ({"if_modified_since": AFTER}, Outcome.NOT_MODIFIED),
        ({"if_modified_since": BEFORE}, Outcome.PROCEED),
        ({"if_modified_since": "not a date"}, Outcome.PROCEED),
        ({"if_unmodified_since": BEFORE}, Outcome.PRECONDITION_FAILED),
        ({"if_unmodified_since": SAME}, Outcome.PROCEED),
        # S3's documented combinations:
        ({"if_match": ETAG, "if_unmodified_since": BEFORE}, Outcome.PROCEED),
        ({"if_none_match": '"other"', "if_modified_since": AFTER}, Outcome.PROCEED),
        ({"if_match": '"other"', "if_none_match": ETAG}, Outcome.PRECONDITION_FAILED),
    ],
)
def test_outcomes(headers, outcome):
    assert run(**headers) is outcome


def test_has_conditions():
    assert not has_conditions({"range": "bytes=0-1"})
    assert has_conditions({"if-none-match": "*"})
