#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into fuzz/seeds/<target>/ (stdlib only):

    python3 fuzz/make_seeds.py

Small on purpose: libFuzzer grows its corpus (fuzz/corpus/, not committed) from these.
The SQLite seeds are tiny databases with 512-byte pages, shaped like sydent's and ma1sd's,
with an interior page, an overflow row and a rowid alias, so that mutations start from files
the reader gets far into.
"""

import json
import os
import sqlite3
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")


def put(target, name, data):
    folder = os.path.join(SEEDS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def sqlite_file(script, rows=None):
    path = os.path.join(HERE, "seed.tmp.db")
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=512")
    db.execute("PRAGMA journal_mode=DELETE")
    db.executescript(script)
    for sql, values in rows or []:
        db.execute(sql, values)
    db.commit()
    db.execute("VACUUM")
    db.close()
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def sqlite_seeds():
    sydent = sqlite_file(
        """
        CREATE TABLE local_threepid_associations (id integer primary key autoincrement,
            medium varchar(16) not null, address varchar(256) not null, mxid varchar(256),
            ts integer, notBefore bigint, notAfter bigint);
        CREATE TABLE global_threepid_associations (id integer primary key,
            medium varchar(16) not null, address varchar(256) not null, mxid varchar(256),
            ts integer, notBefore bigint, notAfter integer, originServer varchar(255),
            originId integer, sgAssoc text);
        """,
        [
            (
                "INSERT INTO local_threepid_associations "
                "(medium, address, mxid, ts, notBefore, notAfter) VALUES (?, ?, ?, ?, ?, ?)",
                ("email", f"user{i}@example.org", f"@user{i}:example.org",
                 1_600_000_000_000 + i, None, None),
            )
            for i in range(12)
        ]
        + [
            (
                "INSERT INTO local_threepid_associations (medium, address, mxid, ts) "
                "VALUES (?, ?, ?, ?)",
                ("email", "long" + "x" * 700 + "@example.org", None, 1_600_000_000_100),
            ),
            (
                "INSERT INTO global_threepid_associations (medium, address, mxid, ts, "
                "notBefore, notAfter, originServer, originId, sgAssoc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("msisdn", "447700900123", "@phone:example.org", 1_600_000_000_000,
                 1_600_000_000_000, 4_000_000_000_000, "id.example.org", 7, "{}"),
            ),
        ],
    )
    put("sqlite_reader", "sydent.db", sydent)
    ma1sd = sqlite_file(
        """
        CREATE TABLE `hashes` (`mxid` VARCHAR, `medium` VARCHAR, `address` VARCHAR,
            `hash` VARCHAR);
        CREATE TABLE `invite_3pid` (`id` VARCHAR, `medium` VARCHAR, `address` VARCHAR);
        """,
        [
            (
                "INSERT INTO hashes VALUES (?, ?, ?, ?)",
                (f"@u{i}:example.org", "email", f"u{i}@example.org", "h" * 43),
            )
            for i in range(4)
        ]
        + [("INSERT INTO invite_3pid VALUES (?, ?, ?)", ("i1", "email", "x@example.org"))],
    )
    put("sqlite_reader", "ma1sd.db", ma1sd)
    types = sqlite_file(
        """
        CREATE TABLE t (id INTEGER PRIMARY KEY, i, r REAL, s TEXT, b BLOB,
            g AS (i * 2) VIRTUAL);
        CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
        """,
        [
            ("INSERT INTO t (i, r, s, b) VALUES (?, ?, ?, ?)", (v, 1.5, "héllo", b"\x00\xff"))
            for v in [0, 1, -1, 300, 1 << 40, -(1 << 62)]
        ]
        + [("INSERT INTO w VALUES (?, ?)", ("k", 1))],
    )
    put("sqlite_reader", "types.db", types)

    for n, sql in enumerate(
        [
            "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL, c)",
            'CREATE TABLE IF NOT EXISTS main."t" ([a b] varchar(256), `c``d` BLOB, '
            "'e' REAL /* ) */, -- x\n f, PRIMARY KEY (f DESC))",
            "CREATE TABLE t (a, b AS (a * 2), c GENERATED ALWAYS AS (a) STORED) WITHOUT ROWID",
            "CREATE TEMP TABLE t (a INTEGER, b, CONSTRAINT c CHECK (b > 0), UNIQUE (a, b), "
            "FOREIGN KEY (b) REFERENCES u(x))",
        ]
    ):
        put("sqlite_schema", f"create{n}.sql", sql)


NAME = "_matrix-fed._tcp.example.org"


def wire(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def answer(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def dns_seeds():
    question = wire(NAME) + struct.pack(">HH", 33, 1)
    example_org = 12 + 12 + 5  # after the header, "\x0b_matrix-fed" and "\x04_tcp"
    ptr = lambda at: struct.pack(">H", 0xC000 | at)
    records = [
        answer(ptr(12), 33, 300, struct.pack(">HHH", 10, 5, 8448) + b"\x04fast" + ptr(example_org)),
        answer(ptr(12), 33, 3600, struct.pack(">HHH", 20, 0, 443) + wire("matrix.example.org")),
        answer(ptr(12), 5, 60, b"\x05alias" + ptr(example_org)),
        answer(wire("_other._tcp.example.org"), 33, 60, struct.pack(">HHH", 0, 0, 1) + b"\x00"),
        answer(ptr(12), 1, 60, bytes([192, 0, 2, 1])),
    ]
    # Whole messages (mode byte odd): id 0x1234, a response, recursion available.
    header = lambda count, flags=0x8180: struct.pack(">HHHHHH", 0x1234, flags, 1, count, 0, 0)
    put("dns_answer", "full", b"\x01" + header(len(records)) + question + b"".join(records))
    put("dns_answer", "nxdomain", b"\x01" + header(0, 0x8183) + question)
    put("dns_answer", "dot", b"\x01" + header(1) + question
        + answer(ptr(12), 33, 60, struct.pack(">HHH", 0, 0, 0) + b"\x00"))
    # Answer sections only (mode byte even): the count, then the records.
    put("dns_answer", "answers", b"\x00" + struct.pack(">H", 2) + records[0] + records[1])
    put("dns_answer", "loop", b"\x00" + struct.pack(">H", 1)
        + answer(ptr(12), 33, 60, struct.pack(">HHH", 0, 0, 1) + b"\x01a" + ptr(48)))


def json_seeds():
    docs = [
        {},
        {"one": 1, "two": "Two"},
        {"auth": {"success": True, "mxid": "@john.doe:example.com",
                  "profile": {"display_name": "John Doe", "three_pids": [
                      {"medium": "email", "address": "john.doe@example.org"}]}}},
        {"a": "日本語", "本": 2, "日": 1, "😀": [None, False, -0.0, 1e10]},
        {"signatures": {"id": {"ed25519:0": "abc"}}, "unsigned": {}, "esc": "\u0001\n\"\\/"},
        [9007199254740991, -9007199254740991, 9007199254740992, 1.5],
    ]
    for n, doc in enumerate(docs):
        put("canonical_json", f"doc{n}.json", json.dumps(doc, ensure_ascii=n % 2 == 0))


def text_seeds():
    for n, header in enumerate([
        'X-Matrix origin="hs.example.org",key="ed25519:a_1",sig="ABCdef+/",'
        'destination="id.example.org"',
        "x-matrix Origin=hs.org, KEY=ed25519:a,sig=xyz",
        'X-Matrix origin="a,b",key="k\\"q",sig="s\\\\"',
    ]):
        put("xmatrix_header", f"header{n}", header)
    put("xmatrix_header", "parts", "hs.example.org\0ed25519:1\0sig=,\"\\\0id.example.org")
    for n, link in enumerate([
        "\x00https://app.element.io/#/home\x00abc=1",
        "\x01https://APP.element.io:443/x?y=1#frag\x00s",
        "\x04https://[::1]:8080/done\x00s&d",
        "\x00http://bücher.example/ä?q#f\x00sid",
        "\x02http://localhost/\x00s",
    ]):
        put("next_link", f"link{n}", link)
    for n, text in enumerate([
        "\x02\x03\x01sid=1&client_secret=a%3Db&flag",
        "\x00a+b%2Bc%e6%97%a5%zz%",
        "\x04\x01\x02\x03\x00k\x01v\x00k2\x01v2&x=y",
    ]):
        put("percent_decode", f"text{n}", text)


def tlv(tag, content):
    if isinstance(content, str):
        content = content.encode()
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def ldap_seeds():
    for n, text in enumerate([
        "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))",
        "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
        "(|(mail=*@example.org)(cn=a*b*c)(sn~=lu)(age>=3)(age<=9)(uid=*))",
        "(o=Parens R Us \\28for all your parenthetical needs\\29)",
        "(cn:dn:2.4.6.8.10:=Dino)",
        "objectClass=person",
        "*)(uid=*",
    ]):
        put("ldap_filter", f"filter{n}", text)
    equality = tlv(0xA3, tlv(0x04, "uid") + tlv(0x04, "alice"))
    put("ldap_response", "filter_eq", equality)
    put("ldap_response", "filter_and", tlv(0xA0, equality + tlv(0x87, "mail")))
    bind_ok = tlv(0x30, tlv(0x02, b"\x01") + tlv(0x61, tlv(0x0A, b"\x00") + tlv(0x04, "") + tlv(0x04, "")))
    put("ldap_response", "bind_response", bind_ok)
    attrs = tlv(0x30, tlv(0x30, tlv(0x04, "mail") + tlv(0x31, tlv(0x04, "a@example.org") + tlv(0x04, "b@example.org"))))
    entry = tlv(0x30, tlv(0x02, b"\x02") + tlv(0x64, tlv(0x04, "uid=a,dc=example,dc=org") + attrs))
    put("ldap_response", "search_entry", entry)
    cookie = tlv(0x30, tlv(0x02, b"\x00") + tlv(0x04, "c00kie"))
    control = tlv(0x30, tlv(0x04, "1.2.840.113556.1.4.319") + tlv(0x04, cookie))
    done = tlv(0x30, tlv(0x02, b"\x02") + tlv(0x65, tlv(0x0A, b"\x00") + tlv(0x04, "") + tlv(0x04, "")) + tlv(0xA0, control))
    put("ldap_response", "search_done_paged", done)
    notice = tlv(0x30, tlv(0x02, b"\x00") + tlv(0x78, tlv(0x0A, b"\x34") + tlv(0x04, "") + tlv(0x04, "bye") + tlv(0x8A, "1.3.6.1.4.1.1466.20036")))
    put("ldap_response", "notice_of_disconnection", notice)


if __name__ == "__main__":
    sqlite_seeds()
    dns_seeds()
    json_seeds()
    text_seeds()
    ldap_seeds()
