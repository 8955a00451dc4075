#!/usr/bin/env python3
"""A stand-in for chiavdf's `vdf_client`, speaking its TCP protocol to chia's Timelord.

Usage: vdf_client.py HOST PORT COUNTER [--ips N] [--grid G] [--sessions K]

The chiavdf wheel has no `vdf_client` binary, and `chiavdf.prove()` needs the challenge while the
timelord only sends the discriminant, so this process computes the class group VDF itself (small
discriminants, as on a test network) and checks every proof with chiavdf's verifier before
sending it. It serves one chain per session and connects again after each, as the timelord
launcher respawns `vdf_client` (stops after K sessions when given).

The protocol (timelord is the server, `timelord.vdf_server.port`):
  timelord -> client: b"T" (or b"S" for bluebox, refused here), then the discriminant as text
    (chia 2.7.5 sends "-0x" and hex digits) prefixed by its length in 3 digits, then one byte with the initial form's length and the form
    (100 bytes, chiavdf's compressed serialization);
  client -> timelord: b"OK";
  timelord -> client: iterations to prove, each in decimal prefixed by its length in 2 digits;
    "010" (the number 0) means stop;
  client -> timelord: per proof, a 4-byte big-endian length and that many bytes of hex text of
    iterations (8 bytes) | output size (8 bytes) | output form | witness type (1 byte) | witness;
    on stop b"STOP", answered with b"ACK".
The witness is chiavdf's n-Wesolowski format: the proof of the last segment, then for each
earlier segment, last first, its iterations (8 bytes), its 264-bit prime B (33 bytes) and its
proof. Segments end on a grid of G iterations from the chain's start, so the depth stays small.
"""
import argparse
import logging
import math
import queue
import socket
import sys
import threading
import time

import chiavdf

log = logging.getLogger("vdf_client")

FORM_SIZE = 100
B_BYTES = 33


# --- binary quadratic forms of a negative discriminant -------------------------------------


def _normalize(a, b, c):
    r = (a - b) // (2 * a)
    return a, b + 2 * r * a, a * r * r + b * r + c


def reduce_form(a, b, c):
    """The reduced form equivalent to (a, b, c): |b| <= a <= c, b >= 0 if |b| == a or a == c."""
    if not -a < b <= a:
        a, b, c = _normalize(a, b, c)
    while a > c:
        a, b, c = _normalize(c, -b, a)
    if a == c and b < 0:
        b = -b
    return a, b, c


def _xgcd(x, y):
    """(g, u, v) with u*x + v*y == g == gcd(x, y)."""
    u0, u1, v0, v1 = 1, 0, 0, 1
    while y:
        q, r = divmod(x, y)
        x, y = y, r
        u0, u1 = u1, u0 - q * u1
        v0, v1 = v1, v0 - q * v1
    return x, u0, v0


def compose(f1, f2):
    """Gauss composition of two primitive positive definite forms, reduced (Cohen, alg. 5.4.7)."""
    (a1, b1, _c1), (a2, b2, c2) = f1, f2
    if a1 > a2:
        (a1, b1, _c1), (a2, b2, c2) = f2, f1
    s = (b1 + b2) // 2
    n = b2 - s
    if a2 % a1 == 0:
        y1, d = 0, a1
    else:
        d, y1, _ = _xgcd(a2, a1)
    if s % d == 0:
        x2, y2, d1 = 0, -1, d
    else:
        d1, x2, y2 = _xgcd(s, d)
        y2 = -y2
    v1, v2 = a1 // d1, a2 // d1
    r = (y1 * y2 * n - x2 * c2) % v1
    b3 = b2 + 2 * v2 * r
    a3 = v1 * v2
    c3 = (c2 * d1 + r * (b2 + v2 * r)) // v1
    return reduce_form(a3, b3, c3)


def square(f):
    a, b, c = f
    # gcd(a, b) is 1 for all but a negligible share of forms: one modular inverse then.
    if math.gcd(a, b) == 1:
        r = (-pow(b, -1, a) * c) % a
        return reduce_form(a * a, b + 2 * a * r, (c + r * (b + a * r)) // a)
    return compose(f, f)


def form_from_ab(a, b, disc):
    c = (b * b - disc) // (4 * a)
    if b * b - 4 * a * c != disc:
        raise ValueError("form does not match the discriminant")
    return reduce_form(a, b, c)


IDENTITY_FLAG, GENERATOR_FLAG = 4, 8


def _signed(raw):
    """chiavdf's integers: a sign byte (1: negative) and the magnitude, big-endian."""
    value = int.from_bytes(raw[1:], "big")
    return -value if raw[0] else value


def deserialize(data, disc):
    a, b = chiavdf.bqfc_deserialize(str(disc), bytes(data))
    return form_from_ab(_signed(a), _signed(b), disc)


def _partial_cofactor(r2, r1, bound):
    """Euclid on (r2, r1) until r1 <= bound; the cofactor of r1 (chiavdf's xgcd_partial)."""
    co2, co1 = 0, -1
    while r1 and r1 > bound:
        q, r = divmod(r2, r1)
        r2, r1 = r1, r
        co2, co1 = co1, co2 - q * co1
    if r2 < 0:
        co1 = -co1
    return co1


def serialize(f, disc):
    """chiavdf's compressed form serialization (BQFC), padded to 100 bytes."""
    a, b, _ = f
    if b == 1 and a <= 2:
        return bytes([GENERATOR_FLAG if a == 2 else IDENTITY_FLAG]) + bytes(FORM_SIZE - 1)
    d_bits = (abs(disc).bit_length() + 31) // 32 * 32
    sign = b < 0
    if a == b:
        ca, t, g, b0 = a, 0, 0, 0
    else:
        t = -_partial_cofactor(a, abs(b), math.isqrt(a))
        g = math.gcd(a, t)
        if g == 1:
            ca, b0 = a, 0
        else:
            ca, t = a // g, t // g
            b0 = abs(b) // ca
    g_size = max(1, (g.bit_length() + 7) // 8) - 1
    out = bytearray([int(sign) | (int(t < 0) << 1), g_size])
    for value, size in (
        (ca, d_bits // 16 - g_size),
        (abs(t), d_bits // 32 - g_size),
        (g, g_size + 1),
        (b0, g_size + 1),
    ):
        out += value.to_bytes(size, "little")
    return bytes(out) + bytes(FORM_SIZE - len(out))


# --- proving ------------------------------------------------------------------------------


class Chain:
    """One VDF chain from an initial form: every power x^(2^i) is kept, proofs come from them."""

    def __init__(self, disc, x0_bytes, grid):
        self.disc = disc
        self.d_bits = abs(disc).bit_length()
        self.x0_bytes = x0_bytes
        self.powers = [deserialize(x0_bytes, disc)]
        self.grid = grid
        self.segments = {}  # grid index k -> (B bytes, proof bytes) of [(k-1)G, kG]
        self.serialized = {0: x0_bytes}

    def advance(self, n):
        p = self.powers
        f = p[-1]
        for _ in range(n):
            f = square(f)
            p.append(f)

    @property
    def iterations(self):
        return len(self.powers) - 1

    def _ser(self, i):
        s = self.serialized.get(i)
        if s is None:
            s = self.serialized[i] = serialize(self.powers[i], self.disc)
        return s

    def _wesolowski(self, start, t):
        """(B, proof) for x_start -> x_(start+t)."""
        y = self._ser(start + t)
        b_hex = chiavdf.get_b_from_n_wesolowski(
            str(self.disc), self._ser(start), y + serialize((1, 1, 0), self.disc), t, 0
        )
        big_b = int(b_hex, 16)
        q = (1 << t) // big_b
        proof = None
        i = 0
        while q:
            if q & 1:
                f = self.powers[start + i]
                proof = f if proof is None else compose(proof, f)
            q >>= 1
            i += 1
        if proof is None:
            proof = reduce_form(1, 1, (1 - self.disc) // 4)
        return big_b.to_bytes(B_BYTES, "big"), serialize(proof, self.disc)

    def prove(self, n):
        """(output, witness type, witness) for n iterations from the start."""
        last = (n - 1) // self.grid * self.grid  # the last segment starts here, before n
        _, final = self._wesolowski(last, n - last)
        witness = final
        for k in range(last // self.grid, 0, -1):
            seg = self.segments.get(k)
            if seg is None:
                seg = self.segments[k] = self._wesolowski((k - 1) * self.grid, self.grid)
            witness += self.grid.to_bytes(8, "big") + seg[0] + seg[1]
        y = self._ser(n)
        depth = last // self.grid
        if not chiavdf.verify_n_wesolowski(
            str(self.disc), self.x0_bytes, y + witness, n, self.d_bits, depth
        ):
            raise RuntimeError(f"own proof of {n} iterations does not verify")
        return y, depth, witness


# --- the timelord connection ----------------------------------------------------------------


def _read(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("timelord closed the connection")
        buf += chunk
    return buf


def serve_session(host, port, ips, grid):
    """One chain for the timelord; False when the timelord is not there."""
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError:
        return False
    sock.settimeout(None)
    with sock:
        mode = _read(sock, 1)
        if mode == b"0":  # the timelord shuts down a free client with "010"
            _read(sock, 2)
            return True
        if mode != b"T":
            log.warning("mode %r not supported (only T)", mode)
            return True
        # chia 2.7.5 sends chiavdf's create_discriminant() text as is: "-0x…" (hex).
        disc = int(_read(sock, int(_read(sock, 3))).decode(), 0)
        x0 = _read(sock, _read(sock, 1)[0])
        chain = Chain(disc, x0, grid)
        sock.sendall(b"OK")
        requests = queue.Queue(maxsize=1024)

        def reader():
            try:
                while True:
                    it = int(_read(sock, int(_read(sock, 2))))
                    requests.put(it)
                    if it == 0:
                        return
            except (ConnectionError, OSError, ValueError):
                requests.put(None)

        threading.Thread(target=reader, daemon=True).start()
        pending = set()
        started = time.monotonic()
        while True:
            block = not pending
            try:
                while True:
                    it = requests.get(block=block, timeout=1.0 if block else None)
                    block = False
                    if it is None:
                        return True
                    if it == 0:
                        sock.sendall(b"STOP")
                        try:
                            _read(sock, 3)
                        except (ConnectionError, OSError):
                            pass
                        return True
                    pending.add(it)
            except queue.Empty:
                pass
            if not pending:
                continue
            target = min(pending)
            if chain.iterations >= target:
                pending.discard(target)
                y, depth, witness = chain.prove(target)
                body = (
                    target.to_bytes(8, "big", signed=True)
                    + len(y).to_bytes(8, "big", signed=True)
                    + y
                    + bytes([depth])
                    + witness
                ).hex().encode()
                sock.sendall(len(body).to_bytes(4, "big") + body)
                continue
            step = min(target - chain.iterations, 64)
            if ips > 0:
                allowed = int((time.monotonic() - started) * ips) - chain.iterations
                if allowed <= 0:
                    time.sleep(min(0.05, -allowed / ips + 0.001))
                    continue
                step = min(step, allowed)
            chain.advance(step)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("counter", type=int)
    parser.add_argument("--ips", type=float, default=0, help="iterations per second at most (0: no limit)")
    parser.add_argument("--grid", type=int, default=2048, help="iterations per proof segment")
    parser.add_argument("--sessions", type=int, default=0, help="stop after this many (0: never)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s vdf_client {args.counter} %(message)s")
    served = 0
    while args.sessions == 0 or served < args.sessions:
        try:
            if serve_session(args.host, args.port, args.ips, args.grid):
                served += 1
            else:
                time.sleep(0.5)
        except (ConnectionError, OSError) as e:
            log.info("session ended: %s", e)
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
