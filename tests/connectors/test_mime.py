"""The MIME parser against real-world sample mails (tests/samples/mail) and hand-written edge cases.

Third-party samples are byte-exact copies (see /work/shared/samples/mail/SOURCES.txt); `own_*`
files are written for cases the samples miss.
"""

from __future__ import annotations

import email.policy
import hashlib
import random
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest

from helpdesk.connectors import mime
from helpdesk.connectors.base import PayloadError
from helpdesk.connectors.mime import ParsedEmail, html_to_text, parse_email, strip_quoted

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "mail"

# sha256 of the third-party samples as recorded in SOURCES.txt: guards against eol rewriting.
THIRD_PARTY = {
    "SpamScope-mail-parser_mail_test_12":
        "df75861851d704eb3aeb8db9b64cb8db5b963e53a44e7c7da794bf29e9f34d69",
    "SpamScope-mail-parser_mail_malformed_2":
        "f2fcdf6366ade5d846e6e209c6a137d8f976ff0715a6190bfc2847f2b0309879",
    "SpamScope-mail-parser_mail_test_3":
        "07945c6dcdee743cc843f5b8fd41e338e62c1781a52e2fd36cf019a29eb5a2a6",
    "SpamScope-mail-parser_mail_test_14":
        "9e48472c464b368562b8fcc238d612733398876c2c2673f84014dc08be36ee4e",
    "SpamScope-mail-parser_mail_test_18":
        "22679c63ee14f7b8b28d587367ef66d74a96d3b0240c16a41fd3bc9606e739a9",
    "mikel-mail_japanese_shift_jis.eml":
        "bb6426d8edd066accd6891c95b6ae2f190e9ea24f4c841b5e721604b9209080a",
    "mikel-mail_japanese_iso_2022.eml":
        "82004fe1135e935d53ce728024672ecad5cacc0acacf93db1e7098013b0275ad",
    "mikel-mail_report_530.eml":
        "4895345c4bd90e7e96cbb5ed8e7fd2cd28baca7b03648fd8feeb3dbb014aad4c",
    "mikel-mail_attachment_nonascii_filename.eml":
        "01af7f5a2d13eaa3396e485771fa04b36d17db647488298ffbaa138ff0a3f428",
    "mikel-mail_invalid_subject_characters.eml":
        "551411035f25c2bcd7a724e2dbc6b8ddde62ccb7e57ade7b2da679c7af73a6a3",
    "chatwoot-chatwoot_mail_with_quote.eml":
        "54c4c281621ef3ca13708d6e2eeb2396bcafb09cba9ca88a827be5663eb08e64",
    "chatwoot-chatwoot_non_utf_encoded_mail.eml":
        "a5dafc16e610e8b309b6333e968ef774a036eea6de379334f1bc2789661a461e",
}
ALL_SAMPLES = sorted(p.name for p in SAMPLES.iterdir())


def load(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parse(name: str) -> ParsedEmail:
    return parse_email(load(name))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- every sample --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(THIRD_PARTY))
def test_third_party_samples_are_byte_exact_copies(name: str) -> None:
    assert hashlib.sha256(load(name)).hexdigest() == THIRD_PARTY[name]


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_every_sample_parses_with_a_stable_id(name: str) -> None:
    raw = load(name)
    first, second = parse_email(raw), parse_email(raw)
    assert first.synthetic_id == second.synthetic_id
    if first.message_id is None:
        assert first.synthetic_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    else:
        assert first.synthetic_id == first.message_id
        assert "<" not in first.message_id and ">" not in first.message_id
    assert first.date is None or first.date.utcoffset().total_seconds() == 0
    assert "\ufffd" not in first.subject + first.full_text + (first.from_name or "")


# --- third-party samples ---------------------------------------------------------------------

def test_chatwoot_reply_strips_quote_but_full_text_keeps_it() -> None:
    mail = parse("chatwoot-chatwoot_mail_with_quote.eml")
    assert mail.subject == "Re: Checking mail forwarding to cw inbox"
    assert (mail.from_address, mail.from_name) == ("sony@chatwoot.com", "Sony Mathew")
    assert mail.to == ["reply+6bdc3f4d-0bec-4515-a284-5d916fdde489@example.com"]
    assert mail.message_id == "CAFkiBVwJjO_k_e-LpiKi7MAQAKbHX5nkEPcf0y1R=bjcEHogMg@mail.gmail.com"
    ses_id = "0100017b5d8efc70-c7f18809-aa55-48f6-91fd-b626092ed8b3-000000@email.amazonses.com"
    assert mail.in_reply_to == [ses_id]
    assert mail.references == [
        "CAFkiBVxGoURoqdkY-O_25F-8b41kb-GWBc6hh4Djd5ynwOikXA@mail.gmail.com", ses_id]
    assert mail.date == utc(2021, 8, 19, 8, 44, 31)
    assert mail.text == "Yes, I am providing you step how to reproduce this issue"
    assert "Any update on this?" in mail.full_text
    assert "wrote:" in mail.full_text and "Software developer" in mail.full_text
    assert mail.html is not None and 'class="gmail_quote"' in mail.html
    assert not mail.is_auto_reply and not mail.is_bounce and mail.attachments == []


def test_chatwoot_auto_reply_arabic_and_duplicate_in_reply_to() -> None:
    mail = parse("chatwoot-chatwoot_non_utf_encoded_mail.eml")
    assert mail.subject == "أهلين عميلنا الكريم"
    assert mail.from_name == "متجر سوق نت"
    assert mail.from_address == "example@gmail.com"
    assert mail.in_reply_to == ["4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"]
    assert mail.is_auto_reply is True
    assert mail.text == "أنظروا، أنا أحتاجها فقط لتقوم بالتدقيق في مقالتي الشخصية"
    assert mail.date == utc(2022, 4, 3, 18, 48, 20)


def test_dsn_with_null_return_path_and_rfc822_headers() -> None:
    mail = parse("SpamScope-mail-parser_mail_malformed_2")
    assert mail.is_bounce is True
    assert mail.is_auto_reply is True  # Return-Path: <>
    assert mail.bounced_message_ids == ["004801d1fc84$01c934ac$b247f0b7$@infospacemail.com"]
    assert mail.from_address == "postmaster@netpar.com.br"
    assert mail.message_id == "B0950073156@apus.netpar.com.br"
    assert "User's mailbox quota exceeded" in mail.text
    assert "Reporting-MTA" not in mail.full_text
    [dsn] = mail.attachments
    assert (dsn.filename, dsn.content_type, dsn.inline) == (
        "DSN57BAC498.txt", "message/delivery-status", False)
    assert b"Status: 4.2.2" in dsn.content and dsn.size == len(dsn.content)


def test_sendmail_dsn_body_is_the_human_readable_part() -> None:
    mail = parse("mikel-mail_report_530.eml")
    assert mail.is_bounce is True
    assert mail.is_auto_reply is True  # Auto-Submitted: auto-generated (failure)
    assert mail.bounced_message_ids == ["200712232303.lBNN3jDq002941@mail12.rrrr.com.au"]
    assert (mail.from_address, mail.from_name) == (
        "mailer-daemon@tttttt.com.au", "Mail Delivery Subsystem")
    assert "553 5.3.0 <edwin@zzzzzzz.com>... Unknown E-Mail Address" in mail.full_text
    assert "MIME-encapsulated" not in mail.full_text  # the preamble
    assert "Reporting-MTA" not in mail.full_text  # the delivery-status part
    assert "Returned mail: User unknown" not in mail.full_text  # the returned headers
    assert "MailScanner" in mail.full_text and "MailScanner" not in mail.text  # "-- " signature
    assert mail.attachments == []
    assert mail.date == utc(2007, 12, 23, 23, 3, 53)


def test_shift_jis_body() -> None:
    mail = parse("mikel-mail_japanese_shift_jis.eml")
    assert mail.full_text == ("あいうえお\n\nこのメールはテスト用のメールです。\n\n"
                              "今後ともよろしくお願い申し上げます！")
    assert mail.message_id == "xxxxx@docomo.ne.jp"
    assert mail.date == utc(2014, 5, 28, 8, 18, 19)


def test_iso_2022_jp_body_and_utf8_encoded_words() -> None:
    mail = parse("mikel-mail_japanese_iso_2022.eml")
    assert mail.subject == "まみむめも"
    assert mail.full_text == "すみません。"
    assert mail.to == ["raasdnil@gmail.com"]
    assert mail.headers["to"] == "みける <raasdnil@gmail.com>"
    assert mail.message_id is None and mail.date is None


def test_raw_windows_1252_subject() -> None:
    mail = parse("mikel-mail_invalid_subject_characters.eml")
    assert mail.subject == "Formação FrenetikPolis: Mega Campanha Final Verão | Cursos de Setembro"
    assert mail.from_name == "Formação Frenetikpolis"
    assert mail.from_address == "info@formacaofrenetik.info"
    assert mail.to == ["martin@internet.ao", "iris@internet.ao", "support@maxnet.ao"]
    assert mail.full_text == "TEST"
    assert mail.synthetic_id == "sha256:" + THIRD_PARTY["mikel-mail_invalid_subject_characters.eml"]


def test_gb2312_declared_but_utf8_body() -> None:
    mail = parse("SpamScope-mail-parser_mail_test_12")
    assert mail.subject == "代开各地增值税发票"
    assert mail.from_name == "张先生"
    assert mail.full_text.startswith("你好！我公司可代开各类增值税发票")
    assert "电话：13662615434张经理" in mail.full_text
    assert mail.to == ["danglüe@email.com"]  # raw UTF-8 in the local part
    assert mail.synthetic_id == "sha256:" + THIRD_PARTY["SpamScope-mail-parser_mail_test_12"]


def test_raw_non_ascii_attachment_filename() -> None:
    mail = parse("mikel-mail_attachment_nonascii_filename.eml")
    assert mail.full_text == "This is the first part."
    [part] = mail.attachments
    assert (part.filename, part.content_type, part.content, part.size, part.inline) == (
        "ciële.txt", "text/plain", b"Hi there.\r\n", 11, False)
    assert part.content_id is None


def test_encoded_display_names_with_comma_and_quotes() -> None:
    mail = parse("SpamScope-mail-parser_mail_test_18")
    assert mail.from_name == "LastßlName, FirstName"
    assert mail.from_address == "comma.name@example.com"
    assert mail.to == ["tony.stark@example.com"]
    assert mail.cc == ["simple@example.net", "john.doe@example.com"]
    assert 'John "Johnny" Doe' in mail.headers["cc"]
    assert mail.message_id is None
    assert mail.full_text.startswith("This is a test email body.")


def test_inline_png_without_filename_and_html_first() -> None:
    mail = parse("SpamScope-mail-parser_mail_test_14")
    [image] = mail.attachments
    assert (image.filename, image.content_type, image.content, image.inline) == (
        "attachment-1.png", "image/png", b"PNG here", True)
    assert image.size == 8
    assert mail.html is not None and "HTML here" in mail.html
    assert mail.full_text == "HTML here\n\nPlaintext here."  # <title> dropped
    assert mail.message_id is None


def test_outlook_mixed_alternative_with_inline_text_part() -> None:
    mail = parse("SpamScope-mail-parser_mail_test_3")
    assert mail.message_id == (
        "8AF5A2192C2A46BE.2743cdb5-7033-d969-fce8-c552542a49a3@mail.outlook.com")
    assert (mail.from_address, mail.from_name) == ("oneil.844@randtelekom.com.tr", "Ava Oneil")
    assert mail.text.startswith(
        "I am sending you the bills of the goods we delivered to you in the attachment\n")
    assert "The Firebox deleted export_pdf_ 65acf801~.js." in mail.full_text  # inline part
    assert mail.html == ('<p dir="auto">I am sending you the bills of the goods we delivered to'
                         ' you in the attachment</p>\n')
    assert mail.attachments == []
    assert mail.date == utc(2016, 8, 22, 13, 56, 9)
    assert set(mail.headers) == {"from", "to", "subject", "date"}


# --- own edge cases ----------------------------------------------------------------------------

def test_html_only_mail() -> None:
    mail = parse("own_html_only.eml")
    assert mail.html is not None and "<script>" in mail.html
    assert mail.full_text == ("Hello there,\n\nFish & chips cost €5 — café.\n\n"
                              "First item\nSecond item\nLine one\nLine two")
    assert mail.text == mail.full_text
    assert (mail.from_name, mail.from_address) == ("Support Bot", "bot@example.org")
    assert mail.date == utc(2024, 1, 2, 10, 0)


def test_mail_without_body() -> None:
    mail = parse("own_no_body.eml")
    assert (mail.text, mail.full_text, mail.html, mail.attachments) == ("", "", None, [])
    assert mail.subject == "No body at all"
    assert mail.message_id == "no-body@example.com"


def test_windows_1252_body_declared_utf8_and_raw_subject() -> None:
    mail = parse("own_cp1252_declared_utf8.eml")
    assert mail.full_text == "Café crème “brûlée” costs €5."
    assert mail.subject == "Café order"
    assert mail.from_name == "Renée"


def test_unknown_charsets_fall_back() -> None:
    mail = parse("own_unknown_charset.eml")
    assert mail.full_text == "Grüße aus Köln"  # charset=unknown-8bit, UTF-8 bytes
    assert mail.subject == "TESTcafé"  # =?NONE?B?...?= (bad padding) + =?unknown-8bit?Q?...?=
    assert mail.from_name == "Jérôme"  # =?x-unknown?Q?...?= holding Latin-1 bytes


def test_threading_headers_and_garbage_addresses() -> None:
    mail = parse("own_threading_garbage.eml")
    assert mail.message_id == "bare-id@example.com"
    assert mail.in_reply_to == ["parent@example.com", "other@example.com"]
    assert mail.references == ["root@example.com", "middle@example.com", "parent@example.com"]
    assert (mail.from_address, mail.from_name) == ("alice@example.com", "Alice")
    assert mail.to == []
    assert mail.cc == ["real@example.com"]
    assert mail.reply_to == ["replies@example.com"]
    assert mail.date is None
    assert mail.text == "Thanks, that fixed it."


def test_parameter_that_crashes_the_modern_parser() -> None:
    # "filename*" without a value raises IndexError in email.policy.default (CPython
    # gh-151857, unfixed in 3.11); parse_email re-parses with compat32 and still succeeds.
    mail = parse("own_compat32_fallback.eml")
    assert mail.text == "Please see the log."
    [blob] = mail.attachments
    assert (blob.filename, blob.content_type, blob.content) == (
        "attachment-1.bin", "application/octet-stream", b"\x00\x01\x02\x03")


def test_any_failure_under_compat32_retries_with_the_modern_policy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_extract = mime._extract
    policies = []

    def compat32_fails(msg: Message, raw: bytes) -> ParsedEmail:
        policies.append(msg.policy)
        if msg.policy is email.policy.compat32:
            raise IndexError("simulated header-parser bug")
        return real_extract(msg, raw)

    monkeypatch.setattr(mime, "_extract", compat32_fails)
    mail = parse("chatwoot-chatwoot_non_utf_encoded_mail.eml")
    assert policies == [email.policy.compat32, email.policy.default]
    assert mail.subject == "أهلين عميلنا الكريم" and mail.from_name == "متجر سوق نت"
    assert mail.text.startswith("أنظروا") and mail.is_auto_reply


def test_comment_only_display_names_do_not_crash() -> None:
    mail = parse_email(b"From: (c) <a@b.c>\nTo: (c):\nCc: (x): A@B.com;\n\nhi")
    assert (mail.from_address, mail.to, mail.cc) == ("a@b.c", [], ["a@b.com"])


def test_attachment_kinds() -> None:
    mail = parse("own_attachments.eml")
    summary = [(a.filename, a.content_type, a.size, a.content_id, a.inline)
               for a in mail.attachments]
    assert summary == [
        ("attachment-1.png", "image/png", 8, "logo@example.com", True),
        ("résumé.pdf", "application/pdf", 9, None, False),
        ("attachment-3.ics", "text/calendar", 29, None, False),
        ("отчёт.txt", "application/octet-stream", 6, None, False),
        ("attachment-5.eml", "message/rfc822", mail.attachments[4].size, None, True),
    ]
    assert mail.attachments[0].content.startswith(b"\x89PNG")
    forwarded = mail.attachments[4].content
    assert b"Message-ID: <invoice-42@example.com>" in forwarded and b"Invoice body." in forwarded
    assert mail.full_text == "See the logo and the forwarded mail."
    assert mail.html is not None and "cid:logo@example.com" in mail.html


def test_uppercase_report_without_report_type_is_a_bounce() -> None:
    mail = parse("own_dsn_uppercase.eml")
    assert mail.is_bounce is True
    assert mail.bounced_message_ids == ["our-outbound-7@helpdesk.example.com"]
    assert mail.text.startswith("Delivery to the following recipient failed permanently")
    assert [a.content_type for a in mail.attachments] == ["message/rfc822"]


def test_read_receipt_is_not_a_bounce() -> None:
    mail = parse("own_read_receipt.eml")
    assert mail.is_bounce is False and mail.bounced_message_ids == []
    assert mail.text == "Your message was read."
    assert mail.attachments == []


def test_format_flowed_and_utf8_labelled_latin1() -> None:
    mail = parse("own_flowed_latin1_lie.eml")
    assert mail.full_text == ("This paragraph was wrapped by the sender's client à la flowed."
                              "\n\n> quoted text that was wrapped too")
    assert mail.text == "This paragraph was wrapped by the sender's client à la flowed."


NOT_EMAIL = [
    b"",
    b"  \r\n\r\n\t",
    bytes(range(256)),
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
    b'{"event": "inbound", "id": 1}',
    b"Just some words without any header block.\n",
]


@pytest.mark.parametrize("raw", NOT_EMAIL)
def test_input_that_is_not_an_email_raises_payload_error(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_email(raw)


def test_minimal_header_only_input_is_an_email() -> None:
    mail = parse_email(b"Subject: hi")
    assert mail.subject == "hi" and mail.full_text == "" and mail.from_address is None
    assert mail.synthetic_id == "sha256:" + hashlib.sha256(b"Subject: hi").hexdigest()


@pytest.mark.parametrize(("header", "expected"), [
    (b"Auto-Submitted: auto-replied", True),
    (b"Auto-Submitted: auto-generated (failure)", True),
    (b"Auto-Submitted: no", False),
    (b"X-Autoreply: yes", True),
    (b"X-Autorespond: vacation", True),
    (b"Precedence: bulk", True),
    (b"Precedence: junk", True),
    (b"Precedence: list", True),
    (b"Precedence: first-class", False),
    (b"Return-Path: <>", True),
    (b"Return-Path: <owner@example.com>", False),
    (b"X-Mailer: Outlook", False),
])
def test_auto_reply_detection(header: bytes, expected: bool) -> None:
    raw = b"From: a@example.com\nSubject: x\n" + header + b"\n\nbody\n"
    assert parse_email(raw).is_auto_reply is expected


def test_mutated_samples_never_raise_anything_but_payload_error() -> None:
    rng = random.Random(20240101)
    samples = [load(name) for name in ALL_SAMPLES]
    alphabet = b'<>@"\'()=?;:,\\ \t\r\n*%_-./abqB\x80\xc3\xa9\xff\x00'
    parsed = 0
    for _ in range(400):
        raw = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(raw))
            if rng.random() < 0.5:
                raw[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            else:
                del raw[pos:pos + rng.randint(1, 20)]
        try:
            result = parse_email(bytes(raw))
        except PayloadError:
            continue
        assert isinstance(result, ParsedEmail)
        parsed += 1
    assert parsed > 300


# --- text helpers --------------------------------------------------------------------------

def test_strip_quoted_outlook_header_block() -> None:
    text = ("Sure, will do.\n\nRegards,\nBob\n\n________________________________\n"
            "From: Support <help@example.com>\nSent: Monday, 1 January 2024 10:00\n"
            "To: Bob\nSubject: RE: ticket\n\nOld text")
    assert strip_quoted(text) == "Sure, will do.\n\nRegards,\nBob"


def test_strip_quoted_original_message_and_signature() -> None:
    text = "Top answer\n\n-- \nBob, ACME\n\n-----Original Message-----\nFrom: x\nold"
    assert strip_quoted(text) == "Top answer"


def test_strip_quoted_keeps_interleaved_answers() -> None:
    assert strip_quoted("> q1\nanswer 1\n> q2\nanswer 2") == "answer 1\nanswer 2"


@pytest.mark.parametrize("text", ["-- \nJust a signature", "> only quoted\n> lines"])
def test_strip_quoted_never_returns_empty(text: str) -> None:
    assert strip_quoted(text) != ""


def test_strip_quoted_needs_a_date_in_the_on_wrote_line() -> None:
    assert strip_quoted("On Monday I wrote:\nthe plan") == "On Monday I wrote:\nthe plan"


def test_html_to_text_blocks_entities_and_dropped_elements() -> None:
    html = ("<style>b{}</style><script>x()</script><p>A&amp;B&nbsp;C</p><ul>\n <li>one</li>"
            "\n <li>two   words</li></ul><div>x<br>y</div><table><tr><td>a</td><td>b</td></tr>"
            "</table>")
    assert html_to_text(html) == "A&B C\n\none\ntwo words\nx\ny\n\na b"


def test_both_policies_read_every_sample_alike() -> None:
    """parse_email reads with compat32 first (faster: headers are decoded here, not by the
    policy); the modern policy, its fallback, reads every sample the same way."""
    from email.parser import BytesParser

    checked = 0
    for path in sorted(SAMPLES.iterdir()):
        raw = path.read_bytes()
        try:
            modern = mime._extract(BytesParser(policy=email.policy.default).parsebytes(raw), raw)
        except Exception:  # noqa: BLE001, S112 - the modern policy's own bugs (see above)
            continue
        assert mime._extract(BytesParser(policy=email.policy.compat32).parsebytes(raw),
                             raw) == modern, path.name
        checked += 1
    assert checked >= 10


def test_a_plain_address_list_entry_reads_as_the_full_parser_reads_it():
    """Plain `Name <address>` entries skip the modern header parser: same pairs, and a name
    in adjacent RFC 2047 words is joined without the space between them (RFC 2047 6.2)."""
    from helpdesk.connectors.mime_text import parse_addresses

    assert parse_addresses(["Bob Smith <Bob@Example.COM>", "a.b+c@x.org",
                            "=?utf-8?q?Ren=C3=A9e?= <r@x.fr>", "\"Smith, Bob\" <s@x.org>",
                            "bob@x.org (Bob)", "O'Neil  Jr <o@x.org>"]) == [
        ("Bob Smith", "bob@example.com"), ("", "a.b+c@x.org"), ("Renée", "r@x.fr"),
        ("Smith, Bob", "s@x.org"), ("", "bob@x.org"), ("O'Neil Jr", "o@x.org")]
    assert parse_addresses(["=?utf-8?b?0J7Qu9GM0LPQsCDQodC80LjRgNC90L4=?= "
                            "=?utf-8?b?0LLQsA==?= <olga@x.org>"]) == [
        ("Ольга Смирнова", "olga@x.org")]
