"""Identity normalization: one person, one identity value, whatever the channel wrote."""

from __future__ import annotations

import pytest

from helpdesk.services.ingest.identity import InvalidIdentity, normalize


@pytest.mark.parametrize(("raw", "expected"), [
    ("+34 600 00 00 00", "+34600000000"),
    ("whatsapp:+34600000000", "+34600000000"),
    ("34600000000", "+34600000000"),  # WhatsApp wa_id
    ("tel:+1 (415) 555-0100", "+14155550100"),
    ("+44 20 7946 0958", "+442079460958"),
    ("0034600000000", "+34600000000"),  # the international prefix written as 00
    ("0034 600 00 00 00", "+34600000000"),
    ("0034-600-000-000", "+34600000000"),
    # Mexico's WhatsApp ids keep the mobile 1 the numbering plan dropped (they failed the
    # whole delivery): the same number as the person's SMS and calls
    ("5215512345678", "+525512345678"),
    ("whatsapp:+5215512345678", "+525512345678"),
    ("+52 55 1234 5678", "+525512345678"),
])
def test_phones_become_e164(raw, expected):
    assert normalize("phone", raw) == expected


@pytest.mark.parametrize("raw", ["hello", "+1", "", "whatsapp:", "600-000-000",
                                 "+1234567", "+99912345678", "+1234567890123456",
                                 "+155512345678", "+3460000000", "+52123"])
def test_bad_phones_are_refused(raw):
    with pytest.raises(InvalidIdentity):
        normalize("phone", raw)


def test_emails_are_lower_cased_and_trimmed():
    assert normalize("email", "  Ana.Perez@Example.COM ") == "ana.perez@example.com"
    assert normalize("email", "<ana@example.com>") == "ana@example.com"


@pytest.mark.parametrize("raw", ["not-an-email", "@example.com", "ana@", "a b@c.d"])
def test_bad_emails_are_refused(raw):
    with pytest.raises(InvalidIdentity):
        normalize("email", raw)


def test_handles_are_kept_verbatim_but_trimmed():
    assert normalize("telegram", " 123456 ") == "123456"
    with pytest.raises(InvalidIdentity):
        normalize("fax", "123")
