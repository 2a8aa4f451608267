#!/usr/bin/env python3
"""Writes a large sydent database for the import benchmark (stdlib only):

    python3 benches/make_sydent_db.py ROWS PATH

ROWS rows in all: 90 % in local_threepid_associations, 10 % in global_threepid_associations
(a third of those name a 3PID of the local table again, older or newer), 1 % of the local rows
are unbinds (NULL mxid) of a 3PID bound earlier, a fifth of the 3PIDs are phone numbers. The
addresses come in a scrambled order, as years of binds leave them, so that the importer cannot
rely on rowid order. The content is fixed (no clock, no randomness).
"""

import os
import sqlite3
import sys

TS = 1_700_000_000_000
CENTURY = 100 * 365 * 24 * 3600 * 1000


def address(k):
    if k % 5 == 0:
        return "msisdn", f"44{7700000000 + k}"
    return "email", f"user{k}@bench{k % 97}.example.org"


def main():
    rows, path = int(sys.argv[1]), sys.argv[2]
    for suffix in ("", "-journal", "-wal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(
        """
        CREATE TABLE local_threepid_associations (id integer primary key autoincrement,
            medium varchar(16) not null, address varchar(256) not null, lookup_hash varchar,
            mxid varchar(256), ts integer, notBefore bigint, notAfter bigint);
        CREATE TABLE global_threepid_associations (id integer primary key,
            medium varchar(16) not null, address varchar(256) not null,
            lookup_hash varchar, mxid varchar(256) not null, ts integer not null,
            notBefore bigint not null, notAfter integer not null,
            originServer varchar(255) not null, originId integer not null,
            sgAssoc text not null);
        """
    )
    local = rows * 9 // 10
    binds = local - local // 100
    # A permutation of 0..binds: 2654435761 is prime, so coprime with binds unless it divides it.
    step = 2654435761 if binds % 2654435761 else 1

    def local_rows():
        for i in range(binds):
            k = (i * step) % binds
            medium, addr = address(k)
            ts = TS + i
            yield (medium, addr, f"h{k}", f"@user{k}:example.org", ts, ts, ts + CENTURY)
        for i in range(local - binds):
            medium, addr = address((i * 7919) % binds)
            yield (medium, addr, None, None, TS + binds + i, None, None)

    db.executemany(
        "INSERT INTO local_threepid_associations (medium, address, lookup_hash, mxid, ts,"
        " notBefore, notAfter) VALUES (?, ?, ?, ?, ?, ?, ?)",
        local_rows(),
    )

    def global_rows():
        for i in range(rows - local):
            if i % 3 == 0:
                # Replicated from a peer for a 3PID bound here too: older or newer.
                k = (i * 104729) % binds
                ts = TS + k + (-500 if i % 2 else 500)
            else:
                k = binds + i
                ts = TS + i
            medium, addr = address(k)
            yield (medium, addr, f"g{k}", f"@peer{k}:remote.example", ts, ts, ts + CENTURY,
                   "remote.example", i, "{}")

    db.executemany(
        "INSERT INTO global_threepid_associations (medium, address, lookup_hash, mxid, ts,"
        " notBefore, notAfter, originServer, originId, sgAssoc)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        global_rows(),
    )
    db.commit()
    db.close()


if __name__ == "__main__":
    main()
