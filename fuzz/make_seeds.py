#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/TARGET/seed-*).

Each target decodes a few header bytes before its payload (see
fuzz/src/*.rs); the seeds here give the fuzzers well-formed starting points:
real requests in both encodings, around the line limits.
"""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
ALPHABET = b"1aA2bB3cC4dD5eE6fF7gG8hH9iI0jJ!kK@lL#mM$nN%oO^pP&qQ*rR(sS)tT/uU?vV=wW+xX;yY:zZ"


def encode(data: bytes) -> bytes:
    return b"".join(bytes([ALPHABET[b // 78], ALPHABET[b % 78]]) for b in data)


def req(action, id="w1", name="jobs", **extra):
    body = {"ID": id, "FileName": name, "Action": action}
    body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()


REQUESTS = [
    req("Lock", Expire="30"),
    req("Lock", id="w2", Expire=0.25, Wait="1"),
    req("TestLock", Expire="0"),
    req("Unlock", DataStore=None),
    req("Put", name="cfg", Expire="5", DataStore="aGVsbG8=\\\"\u00e9"),
    req("Get", name="cfg", Expire="0"),
    req("Erase", name="cfg"),
    req("Version"),
    req("Stats", Name="x", Identity={"a": [1, 2]}),
    req("lOcK", Expire=1e3),
    b'{"ID":"a","ID":"b","FileName":"f","Action":"Get"}',
    b'{"ID":"a","FileName":"f","Action":"Steal"}',
    b'{"ID":"a","FileName":"f","Action":"Lock","Expire":"nan"}',
    b'{"x":' + b"[" * 40 + b"]" * 40 + b',"ID":"a","FileName":"f","Action":"Get"}',
    b'{"ID":"\\ud83d\\ude00","FileName":"\\u0000","Action":"Get"}',
    b'{"ID":"a","FileName":"f","Action":"Lock","Expire":18446744073709551616}',
]


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    plain = b"\n".join(REQUESTS) + b"\n"
    encoded = b"\r\n".join(encode(r) for r in REQUESTS[:6]) + b"\n"

    # frame: [limit selector][seed u32][stream]
    write("frame", "lines", bytes([40]) + struct.pack("<I", 7) + b"a\nbc\r\n\n\r\nlong line over the limit?\nrest")
    write("frame", "requests", bytes([255]) + struct.pack("<I", 1) + plain + b"unterminated\r")
    write("frame", "exact-limit", bytes([9]) + struct.pack("<I", 3) + b"123456789\n1234567890\n")

    # codec: raw bytes, both as data and as text
    write("codec", "encoded-request", encode(REQUESTS[0]))
    write("codec", "all-bytes", bytes(range(256)))
    write("codec", "last-byte-and-beyond", b"282h zZ")

    # request: lines
    write("request", "all-actions", plain)
    write("request", "junk", b"\x00\xff{\n{}x\n[1]\n\"s\"\n{\"ID\":\"a\",}\n" + b"[" * 100 + b"\n")

    # store: [cap][first token u32] then ops (see fuzz/src/store.rs)
    ops = bytes([0, 0x05, 50, 1, 0x09, 50, 3, 0x05, 4, 0x10, 20, 0x16, 2, 0x05, 9, 200, 12, 6, 0x10, 7, 0x10, 14, 2, 0x05])
    write("store", "basic", bytes([0]) + struct.pack("<I", 1000) + ops)
    write("store", "capped", bytes([0x84]) + struct.pack("<I", 1) + ops * 3)
    # waits mode (bit 0x40): a holder, two waiters, a release, a withdrawal, time passing
    waits = bytes([0x00, 0x00, 100, 0x50, 0x01, 20, 0x60, 0x02, 20, 0x70, 0x03, 20,
                   0x02, 0x00, 6, 1, 4, 250, 5, 0x50, 0x04, 3, 9, 5, 4, 250, 4, 250, 5, 7])
    write("store", "waits", bytes([0x40]) + struct.pack("<I", 77) + waits)
    # shared mode (top two bits): Lock is [0][who = ID + 6 * name][how: bit 0
    # shared, bits 1-2 Limit, bits 3-4 Wait / 30 ms][expire / 5 ms]; Unlock [3][who];
    # TestLock [4][who]; time [5][ms] or [0x85][u16 * 997 ms]; sweep [6];
    # withdraw [7][pick]; compact [0x87]
    readers = bytes([0, 0, 13, 100, 0, 1, 13, 100, 0, 2, 13, 100, 0, 3, 16, 100,
                     0, 0, 13, 100, 0, 4, 7, 100, 3, 0, 5, 40, 6, 4, 3, 0, 1, 0, 50,
                     0x85, 10, 0, 6, 0, 6, 0, 50, 0, 6, 1, 50, 0, 7, 9, 50, 0, 8, 24, 50,
                     7, 0, 0x87, 5, 200, 6])
    write("store", "shared", bytes([0xc0]) + struct.pack("<I", 5) + readers)
    semaphore = bytes([0, 12, 3, 20, 0, 13, 11, 20, 0, 14, 8, 20, 0, 15, 11, 20, 0, 16, 3, 20,
                       5, 30, 0, 12, 3, 20, 6, 5, 90, 6, 3, 13, 4, 14, 5, 255, 6, 0x85, 1, 0, 6])
    write("store", "semaphore", bytes([0xc1]) + struct.pack("<I", 90) + semaphore)

    # connection: [limit][batch][output][connections][seed u32][payload]
    write("connection", "plain", bytes([20, 3, 4, 0]) + struct.pack("<I", 5) + plain)
    write("connection", "encoded", bytes([200, 0, 255, 1]) + struct.pack("<I", 9) + encoded + b"a^1\n zz~~\n")
    waits = b"\n".join([
        req("Lock", id="a", name="x", Expire="5"),
        req("Lock", id="b", name="x", Expire="5", Wait="2"),
        req("Version"),
        encode(req("Lock", id="c", name="x", Expire="1", Wait=0.5)),
        req("Unlock", id="a", name="x"),
        req("TestLock", id="b", name="x"),
    ]) + b"\n"
    write("connection", "waits-one", bytes([20, 7, 255, 0]) + struct.pack("<I", 3) + waits)
    write("connection", "waits-two", bytes([20, 2, 8, 1]) + struct.pack("<I", 4) + waits * 2)
    # --max-output of 1 byte: the replies held behind the wait fill it with
    # nothing sendable, so the connection must pause until the wait ends
    blocked = b"\n".join([
        req("Lock", id="a", name="x", Expire="5"),
        req("Lock", id="b", name="x", Expire="5", Wait="2"),
        req("Version"),
        req("Version"),
        req("TestLock", id="b", name="x"),
    ]) + b"\n"
    write("connection", "waits-blocked", bytes([20, 7, 0, 0]) + struct.pack("<I", 3) + blocked)
    write("connection", "mixed-three", bytes([255, 7, 1, 2]) + struct.pack("<I", 11) + plain + encoded + REQUESTS[7])


    # auth: operations of three bytes [a][b][c] (see fuzz/src/auth.rs):
    # a = action | 8 for w2 | file << 4 | 0x40 Wait | 0x80 table-encoded;
    # b = credentials kind | expire << 4; c = size
    LOCK, UNLOCK, TESTLOCK, PUT, GET, ERASE, VERSION, STATS = range(8)
    write("auth", "binding", bytes([
        LOCK, 1, 0,             # w1 locks f0 as alpha
        LOCK, 0, 0,             # w1 without a Name: NotOwner
        TESTLOCK, 2, 0,         # w1 as beta: NotOwner
        UNLOCK, 3, 5,           # alpha's Identity with one character changed: AuthFailed
        UNLOCK | 0x80, 1, 0,    # alpha, table-encoded: Unlocked
        PUT | 8 | 0x10, 0x12, 0x40,  # w2 puts 16384 bytes on f1 as beta, 120 s
        PUT | 8 | 0x10, 0x12, 0x41,  # 16385: past beta's MaxSize
        GET | 8 | 0x10, 0, 0,   # w2 without a Name: NotOwner
        GET | 8 | 0x10, 2, 0,   # as beta: the value
        ERASE | 8 | 0x10, 1, 0,  # as alpha: NotOwner
        STATS | 0x80, 0, 0,
    ]))
    bad = [(4, 0), (4, 7), (5, 0), (6, 0), (7, 0)]
    bad += [(8, c) for c in range(8)] + [(9, 0), (9, 1), (9, 255), (10, 0), (11, 0)]
    bad += [(12, c) for c in range(5)] + [(13, c) for c in range(3)] + [(14, 0)]
    write("auth", "bad-credentials", b"".join(bytes([LOCK | 0x20, kind, c]) for kind, c in bad))
    write("auth", "anonymous-limits", bytes([
        LOCK, 0x10, 0,          # 120 s without a Name
        LOCK | 0x40, 0, 0,      # Wait 120 s without a Name
        LOCK, 0x20, 0,          # past the max TTL: BadPayload, not AuthFailed
        LOCK, 0, 1,             # an Identity without a Name is anonymous
        LOCK | 0x40, 1, 0,      # alpha with Wait 0, another's lock: NotOwner
        PUT | 0x10, 0, 17,      # 17 bytes without a Name
        PUT | 0x10, 0x30, 16,   # 16 bytes, Expire as a number
        PUT | 0x20, 1, 33,      # past alpha's MaxSize
        PUT | 0x20, 0x11, 32,
        VERSION, 6, 0,          # alpha without Identity, even for Version
        STATS, 0, 0,
    ]))
    write("auth", "names-from-input", bytes([LOCK, 15, 5]) + b"alpha" + bytes([LOCK, 15, 5]) + b"alph/"
          + bytes([TESTLOCK, 15, 8]) + b"../alpha" + bytes([UNLOCK, 15, 5]) + b"alpha")


if __name__ == "__main__":
    main()
