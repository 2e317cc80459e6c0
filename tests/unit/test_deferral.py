"""Deferral headers: a reserved rate-limit slot belongs to exactly one delivery."""

from __future__ import annotations

from celery import Celery

from celery_warden.fleet.deferral import SLOT_HEADER, held_slot, slot_header
from celery_warden.headers import DEFERS as DEFERS_HEADER
from celery_warden.tasks.base import BaseTask

app = Celery("deferral-test", set_as_current=False)


@app.task(name="t.deferred", base=BaseTask)
def deferred() -> None:
    return None


def test_a_slot_header_is_honoured_only_by_the_delivery_it_was_made_for():
    """slot_header() targets the next delivery (defers + 1, same retries); a retry or a later
    deferral that carries the header along does not get to skip the rate check."""
    deferred.push_request(retries=1, headers={DEFERS_HEADER: 2})
    try:
        header = slot_header(deferred, 1234.5)
    finally:
        deferred.pop_request()
    assert header == {SLOT_HEADER: {"at": 1234.5, "retries": 1, "defers": 3}}
    cases = [({"retries": 1, DEFERS_HEADER: 3}, 1234.5),  # the next delivery: ours
             ({"retries": 2, DEFERS_HEADER: 3}, None),  # a retry carried it along
             ({"retries": 1, DEFERS_HEADER: 4}, None)]  # deferred again for another reason
    for request, expected in cases:
        deferred.push_request(retries=request["retries"],
                              headers={DEFERS_HEADER: request[DEFERS_HEADER], **header})
        try:
            assert held_slot(deferred) == expected
        finally:
            deferred.pop_request()


def test_no_or_malformed_slot_header_means_no_slot():
    """Missing or malformed headers never grant a slot."""
    for headers in ({}, {SLOT_HEADER: "soon"}, {SLOT_HEADER: {"at": "x", "retries": 0,
                                                               "defers": 0}}):
        deferred.push_request(retries=0, headers=headers)
        try:
            assert held_slot(deferred) is None
        finally:
            deferred.pop_request()
