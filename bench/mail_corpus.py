"""A deterministic corpus of raw emails for the burst-import bench (bench/burst.py).

`build(count, threads, seed)` returns the mails in the order they are posted: thread roots
and replies (chains of one to three), some replies placed before their parents, from a pool
of customers (some write several threads), in eight charsets (utf-8, iso-8859-1,
windows-1252, iso-2022-jp, shift_jis, koi8-r, gb2312, and utf-8 headers over them) with
base64, quoted-printable, 7bit and 8bit bodies, RFC 2047 subjects and names, some
multipart/alternative, some with attachments (binary, RFC 2231 non-ASCII file names).
Each mail carries what a faithful import must give back: its text and its attachments'
names, sizes and SHA-256. The same arguments always give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import quopri
import random
from dataclasses import dataclass, field
from email.header import Header
from urllib.parse import quote

DOMAIN = "mail.burst.example.org"
SUPPORT = "support@acme.test"

# Paragraphs per charset; {n} is an order number. Every text encodes in its charset.
TEXTS: dict[str, list[str]] = {
    "utf-8": [
        "Hello, my order {n} has not arrived yet 📦. Could you check where it is?",
        "I was charged twice for order {n} — please refund one of them ✅.",
        "Grüße aus Köln: die Bestellung {n} ist beschädigt angekommen. Ärgerlich!",
        "Ciao! L'ordine {n} è arrivato senza la batteria. Cosa devo fare? 🙏",
        "我的订单 {n} 还没有到，请帮忙查一下。Спасибо! ありがとう。",
    ],
    "iso-8859-1": [
        "Bonjour, ma commande {n} n'est pas arrivée. Où est-elle ? Merci d'avance.",
        "Hola, el pedido {n} llegó dañado y necesito el reembolso, por favor. ¿Cuándo?",
        "Guten Tag, können Sie mir sagen, wann die Lieferung {n} kommt? Danke schön.",
        "Olá, a encomenda {n} não chegou. Poderiam verificar? Obrigado.",
    ],
    "windows-1252": [
        "Hi – I was charged €49,90 twice for order {n}. “Urgent” please… thanks!",
        "The invoice {n} says 3 × €12 — that’s wrong, it should be 2 × €12.",
        "Bonjour — la facture {n} indique œuvre « livrée » mais rien reçu…",
    ],
    "iso-2022-jp": [
        "注文{n}がまだ届いていません。至急確認してください。",
        "ログインできません。アカウント{n}のパスワードを再設定したいです。",
        "お世話になっております。請求書{n}の金額が間違っているようです。",
    ],
    "shift_jis": [
        "商品{n}が壊れていました。交換をお願いします。",
        "アプリが起動しません。注文番号は{n}です。よろしくお願いします。",
    ],
    "koi8-r": [
        "Здравствуйте, мой заказ {n} не пришёл. Пожалуйста, помогите.",
        "Добрый день! С карты списали деньги дважды за заказ {n}. Верните, пожалуйста.",
        "Не могу войти в аккаунт, номер заказа {n}. Срочно!",
    ],
    "gb2312": [
        "您好，我的订单{n}还没有到，请尽快处理。谢谢！",
        "我被重复扣款了，订单号{n}，请退款。",
        "账户无法登录，订单{n}，非常着急。",
    ],
}
NAMES = {
    "utf-8": ["Zoë Åström", "José Müller", "Łukasz Żółć"],
    "iso-8859-1": ["François Lefèvre", "Søren Ødegård", "Inês Conceição"],
    "windows-1252": ["Chloé O’Brien", "Renée Dubois"],
    "iso-2022-jp": ["山田 太郎", "佐藤 花子"],
    "shift_jis": ["鈴木 一郎", "高橋 美咲"],
    "koi8-r": ["Иван Петров", "Ольга Смирнова"],
    "gb2312": ["王伟", "李娜"],
}
SUBJECTS = {
    "utf-8": "Commande {n} — où est mon colis ? 📦",
    "iso-8859-1": "Réclamation n° {n}",
    "windows-1252": "Invoice {n} – “double charge”",
    "iso-2022-jp": "注文{n}について",
    "shift_jis": "商品{n}の交換",
    "koi8-r": "Заказ {n}",
    "gb2312": "订单{n}问题",
}
# Transfer encodings a charset's body may take (7bit only where the bytes are 7-bit).
ENCODINGS = {
    "utf-8": ("base64", "quoted-printable", "8bit"),
    "iso-8859-1": ("quoted-printable", "8bit", "base64"),
    "windows-1252": ("quoted-printable", "8bit"),
    "iso-2022-jp": ("7bit", "base64"),
    "shift_jis": ("base64", "8bit"),
    "koi8-r": ("8bit", "base64", "quoted-printable"),
    "gb2312": ("base64", "8bit"),
}
CHARSETS = tuple(TEXTS)
ATTACHMENT_NAMES = ["facture-{n}.pdf", "photo_{n}.png", "relevé n°{n}.csv", "ログ{n}.txt",
                    "заказ-{n}.bin", "receipt {n}.pdf"]
ATTACHMENT_TYPES = {".pdf": "application/pdf", ".png": "image/png", ".csv": "text/csv",
                    ".txt": "text/plain", ".bin": "application/octet-stream"}


@dataclass
class ExpectedAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass
class Mail:
    message_id: str            # without angle brackets
    thread: int                # the thread's number (its root's)
    sender: str
    charset: str
    encoding: str
    text: str                  # the body as the customer wrote it
    raw: bytes
    parent: str | None = None
    early: bool = False        # posted before its parent
    attachments: list[ExpectedAttachment] = field(default_factory=list)


def _transfer(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if encoding == "quoted-printable":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    return data.replace(b"\n", b"\r\n")


def _word(value: str, charset: str, rng: random.Random) -> str:
    """An RFC 2047 encoded word (B or Q, chosen by the seed) in the mail's charset."""
    try:
        value.encode(charset)
    except UnicodeEncodeError:  # a customer's name from another script: UTF-8 words
        charset = "utf-8"
    header = Header(value, charset, header_name="Subject")
    if charset in ("iso-8859-1", "windows-1252", "koi8-r") and rng.random() < 0.5:
        # email.header picks B or Q by charset; spell some Q ones by hand.
        encoded = value.encode(charset)
        q = "".join(chr(b) if chr(b).isalnum() else ("_" if b == 32 else f"={b:02X}")
                    for b in encoded)
        return f"=?{charset}?Q?{q}?="
    return header.encode()


def _attachment(rng: random.Random, n: int) -> tuple[ExpectedAttachment, bytes]:
    name = rng.choice(ATTACHMENT_NAMES).format(n=n)
    kind = ATTACHMENT_TYPES[name[name.rfind("."):]]
    size = rng.choice((700, 3_000, 12_000, 40_000))
    if kind.startswith("text/"):
        content = (f"ligne;montant;état\n{n};12,50 €;payé\n" * (size // 30)).encode("utf-8")
    else:
        head = {"application/pdf": b"%PDF-1.4\n", "image/png": b"\x89PNG\r\n\x1a\n"}.get(kind, b"")
        content = head + rng.randbytes(size)
    expected = ExpectedAttachment(name, kind, len(content), hashlib.sha256(content).hexdigest())
    if name.isascii():
        disposition = f'attachment; filename="{name}"'
    else:  # RFC 2231
        disposition = f"attachment; filename*=utf-8''{quote(name, safe='')}"
    part = (f"Content-Type: {kind}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + _transfer(content, "base64")
    return expected, part


def _body(rng: random.Random, charset: str, n: int) -> str:
    pool = TEXTS[charset]
    paragraphs = [rng.choice(pool).format(n=n) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.3:  # a long line (quoted-printable soft breaks, base64 wrapping)
        paragraphs.append(" ".join(rng.choice(pool).format(n=n) for _ in range(6)))
    return "\n\n".join(paragraphs)


def _mail(rng: random.Random, *, message_id: str, thread: int, sender: tuple[str, str],
          charset: str, n: int, parent: Mail | None, refs: list[str], date: str) -> Mail:
    encoding = rng.choice(ENCODINGS[charset])
    text = _body(rng, charset, n)
    name, address = sender
    subject = SUBJECTS[charset].format(n=thread)
    if parent is not None:
        subject = "Re: " + subject
    headers = [
        f"From: {_word(name, charset, rng)} <{address}>",
        f"To: Acme Support <{SUPPORT}>",
        f"Subject: {_word(subject, charset, rng)}",
        f"Date: {date}",
        f"Message-ID: <{message_id}>",
        "MIME-Version: 1.0",
    ]
    if parent is not None:
        headers.append(f"In-Reply-To: <{parent.message_id}>")
        headers.append("References: " + " ".join(f"<{r}>" for r in refs))
    plain = (f"Content-Type: text/plain; charset={charset}\r\n"
             f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + _transfer(
                 text.encode(charset), encoding)
    shape = rng.random()
    attachments: list[tuple[ExpectedAttachment, bytes]] = []
    if shape < 0.18:
        attachments = [_attachment(rng, n) for _ in range(rng.randint(1, 2))]
    body_part = plain
    if rng.random() < 0.15:  # multipart/alternative: the text part and an HTML twin
        html = "<html><body>" + "".join(f"<p>{p}</p>" for p in text.split("\n\n")) + \
            "</body></html>"
        html_part = (f"Content-Type: text/html; charset={charset}\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n").encode() + _transfer(
                         html.encode(charset), "base64")
        boundary = f"alt-{n}-{rng.randrange(10**9)}"
        body_part = (f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
                     .encode() + _multipart(boundary, [plain, html_part]))
    if attachments:
        boundary = f"mixed-{n}-{rng.randrange(10**9)}"
        head = f'Content-Type: multipart/mixed; boundary="{boundary}"'
        payload = _multipart(boundary, [body_part] + [part for _, part in attachments])
        raw = ("\r\n".join(headers) + "\r\n" + head + "\r\n\r\n").encode() + payload
    else:
        raw = ("\r\n".join(headers) + "\r\n").encode() + body_part
    return Mail(message_id=message_id, thread=thread, sender=address, charset=charset,
                encoding=encoding, text=text, raw=raw,
                parent=parent.message_id if parent else None,
                attachments=[expected for expected, _ in attachments])


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    out = b"This is a multi-part message in MIME format.\r\n"
    for part in parts:
        out += f"\r\n--{boundary}\r\n".encode() + part
    return out + f"\r\n--{boundary}--\r\n".encode()


def build(count: int = 1000, threads: int = 900, seed: int = 17,
          early_share: float = 0.3) -> list[Mail]:
    """`count` mails in `threads` threads, in posting order (see the module's docstring)."""
    if not 0 < threads <= count:
        raise ValueError("need 0 < threads <= count")
    rng = random.Random(seed)
    customers = [(rng.choice(NAMES[charset]), f"customer{i}@{DOMAIN}", charset)
                 for i, charset in enumerate(rng.choice(CHARSETS)
                                             for _ in range(max(threads * 7 // 9, 1)))]
    # How many replies each thread gets: chains of 1-3 on a few threads.
    replies = [0] * threads
    left = count - threads
    while left > 0:
        thread = rng.randrange(threads)
        if replies[thread] < 3:
            replies[thread] += 1
            left -= 1
    mails: list[tuple[float, Mail]] = []
    n = 1000
    for thread in range(threads):
        name, address, charset = rng.choice(customers)
        if rng.random() < 0.15:  # the same customer, another charset this time
            charset = rng.choice(CHARSETS)
        at = rng.random()
        chain: list[Mail] = []
        for depth in range(replies[thread] + 1):
            n += 1
            parent = chain[-1] if chain else None
            message_id = f"burst-{seed}-{thread}-{depth}@{DOMAIN}"
            date = (f"Mon, 30 Nov 2026 {8 + thread % 10:02d}:{thread % 60:02d}:"
                    f"{depth * 7:02d} +0000")
            mail = _mail(rng, message_id=message_id, thread=thread,
                         sender=(name, address), charset=charset, n=n, parent=parent,
                         refs=[m.message_id for m in chain], date=date)
            chain.append(mail)
            if parent is None:
                key = at
            elif rng.random() < early_share:
                key = at - rng.uniform(0.0005, 0.05)
            else:
                key = at + depth * 0.05 + rng.uniform(0.0005, 0.05)
            mails.append((key, mail))
    mails.sort(key=lambda item: item[0])
    ordered = [mail for _, mail in mails]
    position = {mail.message_id: index for index, mail in enumerate(ordered)}
    for mail in ordered:
        mail.early = mail.parent is not None and position[mail.parent] > position[mail.message_id]
    return ordered
