#!/usr/bin/env python3
"""Clean-room reader for the tic v1 model-artifact format.

Written only from format-spec/SPEC.md, CODECS.md, ENCRYPTION.md, LOSSY.md and
the files under format-spec/test-vectors/.  Python 3.11, standard library only.

    python3 tic_reader.py ARTIFACT [--out DIR] [--trust PUBKEY_FILE ...]
                          [--allow-unsigned] [--symkey FILE]
                          [--identity AGE_IDENTITY_FILE] [--json]
    python3 tic_reader.py --self-test format-spec/test-vectors

Section references such as "SPEC §4.3" point into those documents.

Layout of this file:
  1. errors and a bounds-checked byte reader
  2. crypto: Ed25519 verify (RFC 8032), X25519 (RFC 7748), ChaCha20-Poly1305
     (RFC 8439), HKDF-SHA256 (RFC 5869), Bech32, age v1 (binary, X25519 only)
  3. key files (Ed25519 PEM, symmetric keys, age identities)
  4. codecs: raw, planes (CODECS.md), mantissa and quant (LOSSY.md)
  5. container: preamble, signature, header, consistency rules, recipients
  6. reading: chunk digests, decryption, decoding, tensor/file digests, output
  7. CLI and the self-test
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import struct
import sys
from decimal import Decimal

# ---------------------------------------------------------------------------
# 1. Errors and byte reader
# ---------------------------------------------------------------------------


class TicError(Exception):
    """Any rejection of the input. The message is shown to the user."""


class Reader:
    """Bounds-checked little-endian reader over a bytes object (SPEC §1)."""

    __slots__ = ("buf", "pos", "end", "what")

    def __init__(self, buf: bytes, what: str, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.what = what

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or n > self.end - self.pos:
            raise TicError(f"{self.what}: field '{field}' runs past the end "
                           f"(needs {n} bytes at offset {self.pos}, {self.end - self.pos} left)")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return struct.unpack("<H", self.take(2, field))[0]

    def u32(self, field: str) -> int:
        return struct.unpack("<I", self.take(4, field))[0]

    def u64(self, field: str) -> int:
        return struct.unpack("<Q", self.take(8, field))[0]

    def f64(self, field: str) -> float:
        return struct.unpack("<d", self.take(8, field))[0]

    def utf8(self, n: int, field: str) -> str:
        raw = self.take(n, field)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TicError(f"{self.what}: field '{field}' is not valid UTF-8") from None


# ---------------------------------------------------------------------------
# 2. Crypto primitives (pure Python; correctness over speed)
# ---------------------------------------------------------------------------

# --- HKDF-SHA256, RFC 5869 (ENCRYPTION §1) ---------------------------------

def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    # "An empty salt is RFC 5869's default (32 zero bytes)."
    if not salt:
        salt = b"\x00" * 32
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    if length > 255 * 32:
        raise TicError("HKDF: output length over 255*32 bytes")
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


# --- ChaCha20 and Poly1305, RFC 8439 ----------------------------------------

_M32 = 0xFFFFFFFF


def _chacha20_block_words(key_w, counter: int, nonce_w) -> list:
    """One ChaCha20 block (RFC 8439 §2.3) as 16 little-endian words."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574,
         key_w[0], key_w[1], key_w[2], key_w[3], key_w[4], key_w[5], key_w[6], key_w[7],
         counter & _M32, nonce_w[0], nonce_w[1], nonce_w[2]]
    x = list(s)

    def qr(a, b, c, d):
        xa, xb, xc, xd = x[a], x[b], x[c], x[d]
        xa = (xa + xb) & _M32; xd ^= xa; xd = ((xd << 16) | (xd >> 16)) & _M32
        xc = (xc + xd) & _M32; xb ^= xc; xb = ((xb << 12) | (xb >> 20)) & _M32
        xa = (xa + xb) & _M32; xd ^= xa; xd = ((xd << 8) | (xd >> 24)) & _M32
        xc = (xc + xd) & _M32; xb ^= xc; xb = ((xb << 7) | (xb >> 25)) & _M32
        x[a], x[b], x[c], x[d] = xa, xb, xc, xd

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return [(x[i] + s[i]) & _M32 for i in range(16)]


def chacha20_xor(key: bytes, nonce: bytes, counter: int, data: bytes) -> bytes:
    """XOR data with the ChaCha20 keystream starting at block `counter`."""
    if len(key) != 32 or len(nonce) != 12:
        raise TicError("ChaCha20: bad key or nonce length")
    key_w = struct.unpack("<8I", key)
    nonce_w = struct.unpack("<3I", nonce)
    nblocks = (len(data) + 63) // 64
    if counter + nblocks - 1 > _M32:
        raise TicError("ChaCha20: block counter overflow")
    ks = bytearray()
    for b in range(nblocks):
        ks += struct.pack("<16I", *_chacha20_block_words(key_w, counter + b, nonce_w))
    n = len(data)
    if n == 0:
        return b""
    v = int.from_bytes(data, "little") ^ int.from_bytes(ks[:n], "little")
    return v.to_bytes(n, "little")


def poly1305(key: bytes, msg: bytes) -> bytes:
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:32], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        acc = ((acc + int.from_bytes(msg[i:i + 16] + b"\x01", "little")) * r) % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _pad16(n: int) -> bytes:
    return b"\x00" * ((16 - n % 16) % 16)


def _aead_tag(key: bytes, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
    otk = struct.pack("<8I", *_chacha20_block_words(struct.unpack("<8I", key), 0,
                                                     struct.unpack("<3I", nonce))[:8])
    mac_data = aad + _pad16(len(aad)) + ct + _pad16(len(ct)) + struct.pack("<QQ", len(aad), len(ct))
    return poly1305(otk, mac_data)


def aead_seal(key: bytes, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
    ct = chacha20_xor(key, nonce, 1, pt)
    return ct + _aead_tag(key, nonce, aad, ct)


def aead_open(key: bytes, nonce: bytes, aad: bytes, sealed: bytes) -> bytes | None:
    """RFC 8439 §2.8 decryption. The tag is checked (constant time) before the
    keystream is applied (ENCRYPTION §4.3). Returns None when the tag fails."""
    if len(key) != 32 or len(nonce) != 12 or len(sealed) < 16:
        return None
    ct, tag = sealed[:-16], sealed[-16:]
    if not hmac.compare_digest(_aead_tag(key, nonce, aad, ct), tag):
        return None
    return chacha20_xor(key, nonce, 1, ct)


# --- Curve25519 field helpers ---------------------------------------------

_P = 2 ** 255 - 19


def _inv(x: int) -> int:
    return pow(x, _P - 2, _P)


# --- X25519, RFC 7748 §5 ------------------------------------------------------

def x25519(k: bytes, u: bytes) -> bytes:
    if len(k) != 32 or len(u) != 32:
        raise TicError("X25519: inputs must be 32 bytes")
    kb = bytearray(k)
    kb[0] &= 248
    kb[31] &= 127
    kb[31] |= 64
    scalar = int.from_bytes(kb, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)  # mask the top bit
    x1 %= _P
    a24 = 121665
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        kt = (scalar >> t) & 1
        swap ^= kt
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = kt
        A = (x2 + z2) % _P; AA = A * A % _P
        B = (x2 - z2) % _P; BB = B * B % _P
        E = (AA - BB) % _P
        C = (x3 + z3) % _P; D = (x3 - z3) % _P
        DA = D * A % _P; CB = C * B % _P
        x3 = (DA + CB) ** 2 % _P
        z3 = x1 * (DA - CB) ** 2 % _P
        x2 = AA * BB % _P
        z2 = E * (AA + a24 * E) % _P
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * _inv(z2) % _P).to_bytes(32, "little")


X25519_BASE = (9).to_bytes(32, "little")


# --- Ed25519 verification, RFC 8032 §5.1 ------------------------------------

_L = 2 ** 252 + 27742317777372353535851937790883648493
_D = (-121665 * _inv(121666)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _ed_add(P1, P2):
    # RFC 8032 §5.1.4, extended coordinates (X, Y, Z, T)
    X1, Y1, Z1, T1 = P1
    X2, Y2, Z2, T2 = P2
    A = (Y1 - X1) * (Y2 - X2) % _P
    B = (Y1 + X1) * (Y2 + X2) % _P
    C = 2 * T1 * T2 * _D % _P
    Dd = 2 * Z1 * Z2 % _P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % _P, G * H % _P, F * G % _P, E * H % _P)


def _ed_mul(s: int, Pt):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _ed_add(Q, Pt)
        Pt = _ed_add(Pt, Pt)
        s >>= 1
    return Q


def _ed_encode(Pt) -> bytes:
    X, Y, Z, _ = Pt
    zi = _inv(Z)
    x, y = X * zi % _P, Y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _ed_is_identity(Pt) -> bool:
    X, Y, Z, _ = Pt
    return X % _P == 0 and (Y - Z) % _P == 0


def _ed_decode_strict(b: bytes):
    """Decode a point; None if it is not a canonical encoding of a curve point.

    Strictness (SPEC §5 "non-canonical ... R or public key"): y must be < p and
    the encoding x = 0 with the sign bit set is refused, so each point has
    exactly one accepted encoding."""
    if len(b) != 32:
        return None
    v = int.from_bytes(b, "little")
    sign = v >> 255
    y = v & ((1 << 255) - 1)
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    w = (_D * y * y + 1) % _P
    x = u * pow(w, 3, _P) * pow(u * pow(w, 7, _P), (_P - 5) // 8, _P) % _P
    if (w * x * x - u) % _P != 0:
        if (w * x * x + u) % _P != 0:
            return None
        x = x * _SQRT_M1 % _P
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


_BY = 4 * _inv(5) % _P
_ED_B = _ed_decode_strict(_BY.to_bytes(32, "little"))


def _ed_small_order(Pt) -> bool:
    return _ed_is_identity(_ed_mul(8, Pt))


def ed25519_public_from_seed(seed: bytes) -> bytes:
    h = hashlib.sha512(seed).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return _ed_encode(_ed_mul(int.from_bytes(a, "little"), _ED_B))


def ed25519_sign(seed: bytes, msg: bytes) -> bytes:
    """Only used by the self-test to make tampered artifacts."""
    h = hashlib.sha512(seed).digest()
    a = bytearray(h[:32]); a[0] &= 248; a[31] &= 127; a[31] |= 64
    a = int.from_bytes(a, "little")
    A = _ed_encode(_ed_mul(a, _ED_B))
    r = int.from_bytes(hashlib.sha512(h[32:] + msg).digest(), "little") % _L
    R = _ed_encode(_ed_mul(r, _ED_B))
    k = int.from_bytes(hashlib.sha512(R + A + msg).digest(), "little") % _L
    return R + ((r + k * a) % _L).to_bytes(32, "little")


def ed25519_verify_strict(pub: bytes, msg: bytes, sig: bytes) -> bool:
    """Strict Ed25519 verification (SPEC §5): S < L; R and A canonical and not
    of small order; cofactorless equation [S]B == R + [k]A, checked by
    comparing the encoding of [S]B - [k]A with the bytes of R."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    A = _ed_decode_strict(pub)
    R = _ed_decode_strict(sig[:32])
    if A is None or R is None:
        return False
    if _ed_small_order(A) or _ed_small_order(R):
        return False
    S = int.from_bytes(sig[32:], "little")
    if S >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % _L
    X, Y, Z, T = _ed_mul(k, A)
    negkA = ((-X) % _P, Y, Z, (-T) % _P)
    return _ed_encode(_ed_add(_ed_mul(S, _ED_B), negkA)) == sig[:32]


# --- Bech32 (BIP 173), as age uses it ------------------------------------------

_B32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _b32_polymod(values) -> int:
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            chk ^= gen[i] if ((b >> i) & 1) else 0
    return chk


def bech32_decode(s: str) -> tuple[str, bytes]:
    """Decode a Bech32 string (not Bech32m) to (lower-case hrp, 8-bit data).
    age does not apply BIP 173's 90-character limit."""
    if any(ord(c) < 33 or ord(c) > 126 for c in s):
        raise TicError("bech32: invalid character")
    if s.lower() != s and s.upper() != s:
        raise TicError("bech32: mixed case")
    s = s.lower()
    pos = s.rfind("1")
    if pos < 1 or pos + 7 > len(s):
        raise TicError("bech32: bad separator position")
    hrp = s[:pos]
    try:
        data = [_B32_CHARSET.index(c) for c in s[pos + 1:]]
    except ValueError:
        raise TicError("bech32: invalid data character") from None
    hrp_exp = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    if _b32_polymod(hrp_exp + data) != 1:
        raise TicError("bech32: bad checksum")
    acc, bits, out = 0, 0, bytearray()
    for v in data[:-6]:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise TicError("bech32: bad padding")
    return hrp, bytes(out)


# --- age v1, binary form, X25519 recipients only (ENCRYPTION §5.2) -----------
# Implemented from the age specification (C2SP age.md), which ENCRYPTION.md
# incorporates by reference.

_AGE_INTRO = b"age-encryption.org/v1\n"


def _age_b64(s: bytes, what: str) -> bytes:
    """age's base64: standard alphabet, no padding, canonical."""
    if b"=" in s or any(c not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                        for c in s):
        raise TicError(f"age: bad base64 in {what}")
    try:
        out = base64.b64decode(s + b"=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise TicError(f"age: bad base64 in {what}") from None
    if base64.b64encode(out).rstrip(b"=") != s:
        raise TicError(f"age: non-canonical base64 in {what}")
    return out


class AgeHeader:
    def __init__(self, stanzas, mac_input: bytes, mac: bytes, payload: bytes):
        self.stanzas = stanzas          # list of (type, [args], body)
        self.mac_input = mac_input      # header bytes up to and including "---"
        self.mac = mac
        self.payload = payload


def age_parse(data: bytes) -> AgeHeader:
    if not data.startswith(_AGE_INTRO):
        raise TicError("age: body does not start with 'age-encryption.org/v1'")
    pos = len(_AGE_INTRO)
    stanzas = []

    def line() -> bytes:
        nonlocal pos
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise TicError("age: header truncated")
        ln = data[pos:nl]
        pos = nl + 1
        return ln

    while True:
        start = pos
        ln = line()
        if ln.startswith(b"---"):
            if not ln.startswith(b"--- "):
                raise TicError("age: malformed header footer")
            mac = _age_b64(ln[4:], "header MAC")
            if len(mac) != 32:
                raise TicError("age: header MAC is not 32 bytes")
            return AgeHeader(stanzas, data[:start + 3], mac, data[pos:])
        if not ln.startswith(b"-> "):
            raise TicError("age: malformed stanza line")
        parts = ln[3:].split(b" ")
        if not parts or any(len(a) == 0 or any(c < 0x21 or c > 0x7E for c in a) for a in parts):
            raise TicError("age: malformed stanza arguments")
        body = b""
        last = None
        while True:
            # The legacy body encoding (ENCRYPTION §5.4, MAY): a body that is
            # empty or ends with a full 64-column line, with no short final
            # line, directly followed by the next stanza or the footer. No
            # base64 line starts with "-" so the look-ahead is unambiguous.
            if last is None or len(last) == 64:
                if data.startswith(b"-> ", pos) or data.startswith(b"---", pos):
                    break
            bl = line()
            if len(bl) > 64:
                raise TicError("age: stanza body line too long")
            body += bl
            last = bl
            if len(bl) < 64:
                break
        stanzas.append((parts[0].decode(), [a.decode() for a in parts[1:]],
                        _age_b64(body, "stanza body")))
        if len(stanzas) > 4096:
            raise TicError("age: too many stanzas")


class AgeNoMatch(Exception):
    """No stanza of this age file is for the given identity."""


def age_decrypt_x25519(data: bytes, identity: bytes) -> bytes:
    """Decrypt a binary age file with an X25519 identity (32-byte scalar)."""
    hdr = age_parse(data)
    our_pub = x25519(identity, X25519_BASE)
    file_key = None
    for typ, args, body in hdr.stanzas:
        if typ != "X25519":
            continue  # grease and other types are ignored
        if len(args) != 1:
            raise TicError("age: X25519 stanza must have one argument")
        share = _age_b64(args[0].encode(), "X25519 share")
        if len(share) != 32 or len(body) != 32:
            raise TicError("age: malformed X25519 stanza")
        shared = x25519(identity, share)
        if shared == b"\x00" * 32:
            raise TicError("age: X25519 shared secret is all zero")
        wrap_key = hkdf(share + our_pub, shared, b"age-encryption.org/v1/X25519", 32)
        fk = aead_open(wrap_key, b"\x00" * 12, b"", body)
        if fk is not None:
            file_key = fk
            break
    if file_key is None:
        raise AgeNoMatch()
    mac_key = hkdf(b"", file_key, b"header", 32)
    if not hmac.compare_digest(hmac.new(mac_key, hdr.mac_input, hashlib.sha256).digest(), hdr.mac):
        raise TicError("age: header MAC mismatch")
    if len(hdr.payload) < 16:
        raise TicError("age: payload nonce truncated")
    pkey = hkdf(hdr.payload[:16], file_key, b"payload", 32)
    body = hdr.payload[16:]
    CH = 64 * 1024 + 16
    out = bytearray()
    i = 0
    while True:
        chunk = body[i * CH:(i + 1) * CH]
        last = (i + 1) * CH >= len(body)
        if len(chunk) < 16:
            raise TicError("age: payload chunk truncated")
        nonce = i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        pt = aead_open(pkey, nonce, b"", chunk)
        if pt is None:
            raise TicError("age: payload chunk failed to authenticate")
        if last and len(pt) == 0 and i > 0:
            raise TicError("age: empty last chunk")
        out += pt
        if last:
            return bytes(out)
        i += 1


# ---------------------------------------------------------------------------
# 3. Key files
# ---------------------------------------------------------------------------
# Key files (SPEC §5, informative): PEM "PUBLIC KEY" (RFC 8410
# SubjectPublicKeyInfo for Ed25519, OID 1.3.101.112) and PEM "PRIVATE KEY"
# (RFC 8410 PKCS#8, 32-byte seed). We also accept a bare 32-byte key as raw
# bytes, 64 hex digits or base64.

_SPKI_ED25519_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


def _pem_body(text: str, label: str) -> bytes | None:
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    if begin not in text:
        return None
    try:
        body = text.split(begin, 1)[1].split(end, 1)[0]
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError, IndexError):
        raise TicError(f"key file: malformed PEM {label}") from None


def _text_32(raw: bytes) -> bytes | None:
    """32 bytes given as 64 hex digits or base64 (with or without padding),
    optionally followed by one newline (ENCRYPTION §5.3 for symmetric keys)."""
    t = raw
    if t.endswith(b"\r\n"):
        t = t[:-2]
    elif t.endswith(b"\n"):
        t = t[:-1]
    try:
        s = t.decode("ascii")
    except UnicodeDecodeError:
        return None
    if len(s) == 64 and all(c in "0123456789abcdefABCDEF" for c in s):
        return bytes.fromhex(s)
    if len(s) in (43, 44) and all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
                                  for c in s):
        try:
            b = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(b) == 32:
            return b
    return None


def load_ed25519_public(path: str) -> bytes:
    try:
        raw = open(path, "rb").read(1 << 16)
    except OSError as e:
        raise TicError(f"cannot read trusted key {path}: {e.strerror}") from None
    text = raw.decode("ascii", "replace")
    der = _pem_body(text, "PUBLIC KEY")
    if der is not None:
        if len(der) != 44 or not der.startswith(_SPKI_ED25519_PREFIX):
            raise TicError(f"{path}: not an Ed25519 SubjectPublicKeyInfo")
        return der[12:]
    der = _pem_body(text, "PRIVATE KEY")
    if der is not None:
        if len(der) != 48 or not der.startswith(_PKCS8_ED25519_PREFIX):
            raise TicError(f"{path}: not an Ed25519 PKCS#8 private key")
        return ed25519_public_from_seed(der[16:])
    if len(raw) == 32:
        return raw
    k = _text_32(raw)
    if k is None:
        raise TicError(f"{path}: unrecognised public key file format")
    return k


def load_ed25519_seed(path: str) -> bytes:
    """PKCS#8 PEM private key -> 32-byte seed (self-test only)."""
    der = _pem_body(open(path, "r").read(), "PRIVATE KEY")
    if der is None or len(der) != 48 or not der.startswith(_PKCS8_ED25519_PREFIX):
        raise TicError(f"{path}: not an Ed25519 PKCS#8 private key")
    return der[16:]


def load_symkey(path: str) -> bytes:
    """ENCRYPTION §5.3: exactly 32 raw bytes, or 64 hex digits, or standard
    base64 of the 32 bytes (with or without '=' padding); the text forms may
    be followed by one newline (\\n or \\r\\n)."""
    try:
        raw = open(path, "rb").read(4096)
    except OSError as e:
        raise TicError(f"cannot read symmetric key {path}: {e.strerror}") from None
    if len(raw) == 32:
        return raw
    k = _text_32(raw)
    if k is None:
        raise TicError(f"{path}: not a symmetric key (32 raw bytes, 64 hex digits or base64)")
    return k


def load_age_identities(path: str) -> list[bytes]:
    """age identity file: one AGE-SECRET-KEY-1... per line, '#' comments and
    blank lines ignored (age's identity file format)."""
    try:
        text = open(path, "rb").read(1 << 20).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TicError(f"cannot read age identity file {path}: {e}") from None
    keys = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        if not ln.startswith("AGE-SECRET-KEY-1"):
            raise TicError(f"{path}: unsupported identity line (only AGE-SECRET-KEY-1...)")
        hrp, data = bech32_decode(ln)
        if hrp != "age-secret-key-" or len(data) != 32:
            raise TicError(f"{path}: malformed AGE-SECRET-KEY")
        keys.append(data)
    if not keys:
        raise TicError(f"{path}: no identities found")
    return keys


def age_recipient_string(pub: bytes) -> str:
    """Encode an X25519 public key as age1... (for messages only)."""
    data, acc, bits = [], 0, 0
    for b in pub:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    hrp = "age"
    hrp_exp = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _b32_polymod(hrp_exp + data + [0] * 6) ^ 1
    chk = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_B32_CHARSET[d] for d in data + chk)


# ---------------------------------------------------------------------------
# 4. Codecs (CODECS.md, LOSSY.md)
# ---------------------------------------------------------------------------

TILE_SYMBOLS = 65536   # CODECS §4.4
LANES = 32
MAX_CODE_LEN = 12
TABLE_SIZE = 4096
MAX_HUFFMAN_W = 10
MAX_PLANES = 8
MAX_PLANE_W = 16
DIR_ENTRY = 68
CODEC_PARAMS_MAX = 64  # CODECS §2 ("Params are at most 64 bytes")


class CodecError(TicError):
    pass


class PlanesParams:
    def __init__(self, rotate: int, widths: list[int]):
        self.rotate = rotate
        self.widths = widths

    def name(self) -> str:
        return "planes(" + ("rot," if self.rotate else "") + "+".join(map(str, self.widths)) + ")"


def parse_planes_params(p: bytes, elem_size: int) -> PlanesParams:
    """CODECS §4.1."""
    if elem_size not in (1, 2, 4, 8):
        raise CodecError(f"planes: element size {elem_size} not 1, 2, 4 or 8")
    if len(p) < 2:
        raise CodecError("planes: params shorter than 2 bytes")
    rotate, P = p[0], p[1]
    if rotate not in (0, 1):
        raise CodecError("planes: rotate must be 0 or 1")
    if not 1 <= P <= MAX_PLANES:
        raise CodecError("planes: plane count must be 1..8")
    if len(p) != 2 + P:
        raise CodecError("planes: params length must be 2 + P")
    widths = list(p[2:])
    if any(not 1 <= w <= MAX_PLANE_W for w in widths):
        raise CodecError("planes: each plane width must be 1..16")
    if sum(widths) != 8 * elem_size:
        raise CodecError(f"planes: widths sum to {sum(widths)}, element has {8 * elem_size} bits")
    return PlanesParams(rotate, widths)


def _unpack_bits(body: bytes, n: int, w: int) -> list[int]:
    """n w-bit values packed LSB-first (CODECS §1, §4.3 mode 0)."""
    if w == 8:
        return list(body[:n])
    if w == 16:
        return list(struct.unpack(f"<{n}H", body[:2 * n]))
    mask = (1 << w) - 1
    b = body + b"\x00\x00\x00"
    out = [0] * n
    pos = 0
    for i in range(n):
        j = pos >> 3
        out[i] = ((b[j] | (b[j + 1] << 8) | (b[j + 2] << 16)) >> (pos & 7)) & mask
        pos += w
    return out


def _build_huffman_table(first: int, count: int, lens: list[int], w: int) -> list[int]:
    """Canonical code (CODECS §4.3, RFC 1951 §3.2.2) -> 4096-entry decode table
    indexed by the next 12 lane bits read LSB-first. Entry = symbol << 4 | len,
    or -1 for bit patterns that match no code (Kraft sum < 1)."""
    esc = 1 << w
    syms = [(first + i, lens[i]) for i in range(count) if lens[i]]
    if lens[count]:
        syms.append((esc, lens[count]))
    if not syms:
        raise CodecError("huffman: empty code (no nonzero length)")
    kraft = sum(1 << (MAX_CODE_LEN - L) for _, L in syms)
    if kraft > TABLE_SIZE:
        raise CodecError("huffman: Kraft sum above 1")
    bl_count = [0] * (MAX_CODE_LEN + 1)
    for _, L in syms:
        bl_count[L] += 1
    nxt = [0] * (MAX_CODE_LEN + 2)
    code = 0
    for L in range(1, MAX_CODE_LEN + 1):
        code = (code + bl_count[L - 1]) << 1 if L > 1 else 0  # bl_count[0] = 0
        nxt[L] = code
    table = [-1] * TABLE_SIZE
    # symbols in increasing value, ESC (= 2^w) last: syms is already in that order
    for s, L in syms:
        c = nxt[L]
        nxt[L] += 1
        # the code is written most significant bit first at the lowest bit
        # position, i.e. reversed, so reverse it to index the LSB-first peek
        rc = int(format(c, f"0{L}b")[::-1], 2)
        entry = (s << 4) | L
        for k in range(1 << (MAX_CODE_LEN - L)):
            table[rc | (k << L)] = entry
    return table


def _decode_lane(lane: bytes, nsym: int, table: list[int], w: int, where: str) -> list[int]:
    """Decode nsym symbols from one lane (CODECS §4.3 "Lanes")."""
    limit = 8 * len(lane)
    b = lane + b"\x00\x00\x00\x00"   # a peek may look past the end (zeros here)
    esc = 1 << w
    mask = (1 << w) - 1
    out = [0] * nsym
    pos = 0
    for k in range(nsym):
        j = pos >> 3
        e = table[((b[j] | (b[j + 1] << 8) | (b[j + 2] << 16)) >> (pos & 7)) & 0xFFF]
        if e < 0:
            raise CodecError(f"{where}: bit pattern matches no code")
        pos += e & 15
        s = e >> 4
        if s == esc:
            j = pos >> 3
            s = ((b[j] | (b[j + 1] << 8) | (b[j + 2] << 16)) >> (pos & 7)) & mask
            pos += w
        if pos > limit:
            raise CodecError(f"{where}: symbols need more bits than the lane has")
        out[k] = s
    if len(lane) != (pos + 7) // 8:
        raise CodecError(f"{where}: lane_len {len(lane)} != ceil(bits used {pos} / 8)")
    if pos & 7 and lane[-1] >> (pos & 7):
        raise CodecError(f"{where}: nonzero lane padding bits")
    return out


def _decode_huffman_plane(body: bytes, n: int, w: int, where: str) -> list[int]:
    """CODECS §4.3 mode 2."""
    if w > MAX_HUFFMAN_W:
        raise CodecError(f"{where}: huffman mode on a {w}-bit plane (max 10)")
    r = Reader(body, where)
    first = r.u16("first")
    count = r.u16("count")
    if first + count > (1 << w):
        raise CodecError(f"{where}: first + count > 2^w")
    nib = r.take((count + 2) // 2, "code lengths")
    lens = [(nib[i >> 1] >> (4 * (i & 1))) & 15 for i in range(count + 1)]
    if (count + 1) % 2 and nib[-1] >> 4:
        raise CodecError(f"{where}: nonzero padding nibble")
    if any(L > MAX_CODE_LEN for L in lens):
        raise CodecError(f"{where}: code length above 12")
    table = _build_huffman_table(first, count, lens, w)
    T = (n + TILE_SYMBOLS - 1) // TILE_SYMBOLS
    if r.remaining() < DIR_ENTRY * T:
        raise CodecError(f"{where}: tile directory runs past the section")
    dirs = []
    for t in range(T):
        off = r.u32("tile_offset")
        dirs.append((off, struct.unpack("<32H", r.take(64, "lane_len"))))
    area = r.take(r.remaining(), "lane data")
    total = 0
    for t, (off, lens_t) in enumerate(dirs):
        if off != total:
            raise CodecError(f"{where}: tile {t} offset {off} != sum of earlier lane lengths {total}")
        total += sum(lens_t)
    if total != len(area):
        raise CodecError(f"{where}: lane lengths sum to {total}, lane data area is {len(area)} bytes")
    out = [0] * n
    for t, (off, lens_t) in enumerate(dirs):
        base = t * TILE_SYMBOLS
        m = min(n, base + TILE_SYMBOLS) - base
        p = off
        for j in range(LANES):
            ll = lens_t[j]
            nsym = (m - j + LANES - 1) // LANES if m > j else 0
            syms = _decode_lane(area[p:p + ll], nsym, table, w, f"{where} tile {t} lane {j}")
            if nsym:
                out[base + j:base + m:LANES] = syms
            p += ll
    return out


def decode_planes_values(stored: bytes, n: int, pp: PlanesParams, where: str = "planes") -> list[int]:
    """Decode a codec-1 stored chunk of n elements to element integers
    (CODECS §4.2, §4.3)."""
    W = sum(pp.widths)
    r = Reader(stored, where)
    shifts = []
    acc = 0
    for w in pp.widths:
        acc += w
        shifts.append(W - acc)
    planes = []
    for p, w in enumerate(pp.widths):
        wp = f"{where} plane {p}"
        section_len = r.u32(f"plane {p} section_len")
        if section_len < 1:
            raise CodecError(f"{wp}: section_len is 0")
        sec = r.take(section_len, f"plane {p} section")
        mode, body = sec[0], sec[1:]
        if mode == 0:
            need = (n * w + 7) // 8
            if len(body) != need:
                raise CodecError(f"{wp}: raw body is {len(body)} bytes, expected {need}")
            if (n * w) % 8 and body[-1] >> ((n * w) % 8):
                raise CodecError(f"{wp}: nonzero raw padding bits")
            planes.append(_unpack_bits(body, n, w))
        elif mode == 1:
            if len(body) != 2:
                raise CodecError(f"{wp}: const body is not 2 bytes")
            v = body[0] | (body[1] << 8)
            if v >= (1 << w):
                raise CodecError(f"{wp}: const value {v} >= 2^{w}")
            planes.append(v)  # an int stands for a constant plane
        elif mode == 2:
            planes.append(_decode_huffman_plane(body, n, w, wp))
        else:
            raise CodecError(f"{wp}: unknown section mode {mode}")
    if r.remaining():
        raise CodecError(f"{where}: {r.remaining()} bytes after the last section")
    # Reassemble r = sum(sym[p] << shift[p]) (CODECS §4.2)
    const = 0
    vals = None
    for pl, sh in zip(planes, shifts):
        if isinstance(pl, int):
            const |= pl << sh
        elif vals is None:
            vals = [s << sh for s in pl] if sh else list(pl)
        else:
            vals = [a | (s << sh) for a, s in zip(vals, pl)]
    if vals is None:
        vals = [const] * n
    elif const:
        vals = [a | const for a in vals]
    if pp.rotate:  # x = rotr_W(r, 1)
        top = W - 1
        vals = [(v >> 1) | ((v & 1) << top) for v in vals]
    return vals


_PACK = {1: "B", 2: "H", 4: "I", 8: "Q"}


def pack_elements(vals: list[int], elem_size: int) -> bytes:
    return struct.pack(f"<{len(vals)}{_PACK[elem_size]}", *vals)


# --- lossy codecs (LOSSY.md) ------------------------------------------------

# LOSSY §2.1: dtype code -> (name, W, EB, M, bias)
LOSSY_FORMATS = {5: ("F16", 16, 5, 10, 15), 6: ("BF16", 16, 8, 7, 127), 9: ("F32", 32, 8, 23, 127)}


def _code_bytes(B: int) -> int:
    return 1 if B <= 8 else 2 if B <= 16 else 4   # LOSSY §2.3


def fmt_exp(x: float) -> str:
    """Shortest round-trip decimal in exponent form, '2e-2', '1.5e-3' (the
    spelling the test vectors' codec names use; not defined by the spec)."""
    t = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, t.digits)).rstrip("0") or "0"
    exp = t.exponent + len(t.digits) - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if t.sign else ''}{mant}e{exp}"


class LossyParams:
    def __init__(self, codec_id, dtype, inner: PlanesParams, B, K=None, mode=None, eb=None, qbits=None):
        self.codec_id, self.dtype, self.inner, self.B = codec_id, dtype, inner, B
        self.K, self.mode, self.eb, self.qbits = K, mode, eb, qbits
        self.C = _code_bytes(B)

    @property
    def fmt(self):
        return LOSSY_FORMATS[self.dtype]

    def bound(self) -> tuple[int, float]:
        """(bound_kind, bound) the lossy record must state (LOSSY §5)."""
        if self.codec_id == 2:
            return 1, math.ldexp(1.0, -(self.K + 1))
        return (1 if self.mode == 1 else 2), self.eb

    def name(self) -> str:
        dt = self.fmt[0]
        if self.codec_id == 2:
            return f"mantissa({dt},K={self.K};{self.inner.name()})"
        kind = "rel" if self.mode == 1 else "abs"
        return f"quant({dt},{kind}={fmt_exp(self.eb)},q={self.qbits};{self.inner.name()})"


def parse_lossy_params(codec_id: int, p: bytes, elem_size: int) -> LossyParams:
    """LOSSY §3.1 and §4.1."""
    if len(p) < 2:
        raise CodecError("lossy: params too short")
    dtype = p[0]
    if dtype not in LOSSY_FORMATS:
        raise CodecError(f"lossy: params dtype {dtype} is not F16 (5), BF16 (6) or F32 (9)")
    _, W, EB, M, _ = LOSSY_FORMATS[dtype]
    if elem_size != W // 8:
        raise CodecError("lossy: tensor element size differs from the params dtype")
    if codec_id == 2:
        K = p[1]
        if not K < M:
            raise CodecError(f"mantissa: K={K} must be < {M}")
        B = 1 + EB + K
        inner = parse_planes_params(p[2:], _code_bytes(B))
        return LossyParams(2, dtype, inner, B, K=K)
    if len(p) < 11:
        raise CodecError("quant: params too short")
    mode = p[1]
    eb = struct.unpack("<d", p[2:10])[0]
    qbits = p[10]
    if mode not in (1, 2):
        raise CodecError("quant: mode must be 1 or 2")
    if not (eb > 0 and math.isfinite(2 * eb)):
        raise CodecError("quant: eb must be > 0 with 2*eb finite")
    if mode == 1 and not eb < 1:
        raise CodecError("quant: mode 1 needs eb < 1")
    if qbits < 1 or (mode == 2 and qbits > 31):
        raise CodecError("quant: qbits out of range")
    B = qbits + 1 if mode == 2 else 1 + EB + qbits
    if B > 32:
        raise CodecError("quant: B = 1 + EB + qbits exceeds 32")
    inner = parse_planes_params(p[11:], _code_bytes(B))
    return LossyParams(3, dtype, inner, B, mode=mode, eb=eb, qbits=qbits)


def round_to_format(v: float, W: int, EB: int, M: int, bias: int) -> int:
    """round_F (LOSSY §2.2): binary64 -> bits of format F, round to nearest
    even, with subnormals, overflow to signed infinity. Pure integer method."""
    sign = 1 if math.copysign(1.0, v) < 0 else 0
    a = abs(v)
    emax = (1 << EB) - 1
    if a == 0.0:
        return sign << (W - 1)
    if math.isinf(a):
        return (sign << (W - 1)) | (emax << M)
    fr, ex = math.frexp(a)            # a = fr * 2^ex, 0.5 <= fr < 1
    s = int(math.ldexp(fr, 53))       # 53-bit integer significand, a = s * 2^(ex-53)
    e = ex - 1                         # unbiased exponent of a
    qexp = max(e, 1 - bias) - M        # exponent of the target's last mantissa bit
    d = qexp - (ex - 53)
    if d <= 0:
        q = s << (-d)
    else:
        q = s >> d
        rem = s & ((1 << d) - 1)
        half = 1 << (d - 1)
        if rem > half or (rem == half and (q & 1)):
            q += 1
    if q < (1 << M):                   # subnormal (qexp == 1 - bias - M) or zero
        return (sign << (W - 1)) | q
    while q >= (1 << (M + 1)):         # carry into the exponent
        q >>= 1
        qexp += 1
    f = qexp + M + bias
    if f >= emax:
        return (sign << (W - 1)) | (emax << M)
    return (sign << (W - 1)) | (f << M) | (q - (1 << M))


def decode_lossy_chunk(stored: bytes, n: int, lp: LossyParams, where: str = "lossy") -> list[int]:
    """LOSSY §2.4 and §2.5: codes stream, code mapping, exception list."""
    name, W, EB, M, bias = lp.fmt
    r = Reader(stored, where)
    codes_len = r.u32("codes_len")
    codes_raw = r.take(codes_len, "codes stream")
    codes = decode_planes_values(codes_raw, n, lp.inner, f"{where} codes")
    limit = 1 << lp.B
    out = [0] * n
    top = W - 1
    if lp.codec_id == 2:                       # LOSSY §3.2
        sh = M - lp.K
        for i, c in enumerate(codes):
            if c >= limit:
                raise CodecError(f"{where}: code {c} >= 2^B at element {i}")
            out[i] = ((c & 1) << top) | ((c >> 1) << sh)
    elif lp.mode == 2:                         # LOSSY §4.2 mode 2 (absolute)
        step = 2.0 * lp.eb
        for i, c in enumerate(codes):
            if c >= limit:
                raise CodecError(f"{where}: code {c} >= 2^B at element {i}")
            y = (c >> 1) * step
            out[i] = round_to_format(-y if c & 1 else y, W, EB, M, bias)
    else:                                      # LOSSY §4.2 mode 1 (relative)
        step = 2.0 * lp.eb
        qb = lp.qbits
        jmask = (1 << qb) - 1
        emax = (1 << EB) - 1
        for i, c in enumerate(codes):
            if c >= limit:
                raise CodecError(f"{where}: code {c} >= 2^B at element {i}")
            s = c & 1
            v = c >> 1
            f, j = v >> qb, v & jmask
            if f == 0 or f == emax:
                if j:
                    raise CodecError(f"{where}: exponent field {f} with nonzero j at element {i}")
                out[i] = (s << top) | ((emax << M) if f else 0)
            else:
                mhat = 1.0 + j * step
                y = mhat * math.ldexp(1.0, f - bias)
                out[i] = round_to_format(-y if s else y, W, EB, M, bias)
    exc_count = r.u32("exc_count")
    if exc_count > n:
        raise CodecError(f"{where}: exc_count {exc_count} > n {n}")
    idx = []
    prev = -1
    for k in range(exc_count):
        gap, shift, nbytes = 0, 0, 0
        while True:
            b = r.u8("exception index varint")
            nbytes += 1
            if nbytes > 5:
                raise CodecError(f"{where}: varint longer than 5 bytes")
            gap |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b == 0 and nbytes > 1:
                    raise CodecError(f"{where}: non-minimal varint")
                break
        if gap > 0xFFFFFFFF:
            raise CodecError(f"{where}: varint above 2^32 - 1")
        cur = gap if k == 0 else prev + 1 + gap
        if cur >= n:
            raise CodecError(f"{where}: exception index {cur} >= n {n}")
        idx.append(cur)
        prev = cur
    eb_ = W // 8
    vals = r.take(exc_count * eb_, "exception values")
    for k, i in enumerate(idx):
        out[i] = int.from_bytes(vals[k * eb_:(k + 1) * eb_], "little")
    if r.remaining():
        raise CodecError(f"{where}: {r.remaining()} bytes after the exception values")
    return out


class Codec:
    """A validated (codec id, params, element size) triple."""

    def __init__(self, codec_id: int, params: bytes, elem_size: int):
        self.id = codec_id
        self.elem_size = elem_size
        self.planes = None
        self.lossy = None
        if len(params) > CODEC_PARAMS_MAX:
            raise CodecError(f"codec params are {len(params)} bytes (max {CODEC_PARAMS_MAX})")
        if codec_id == 0:
            if params:
                raise CodecError("raw: params must be empty")
        elif codec_id == 1:
            self.planes = parse_planes_params(params, elem_size)
        elif codec_id in (2, 3):
            self.lossy = parse_lossy_params(codec_id, params, elem_size)
        else:
            raise CodecError(f"unknown codec id {codec_id}")

    def name(self) -> str:
        if self.id == 0:
            return "raw"
        if self.id == 1:
            return self.planes.name()
        return self.lossy.name()

    def decode(self, stored: bytes, orig_len: int, where: str = "chunk") -> bytes:
        E = self.elem_size
        if orig_len % E:
            raise CodecError(f"{where}: original length not a multiple of the element size")
        n = orig_len // E
        if self.id == 0:
            if len(stored) != orig_len:
                raise CodecError(f"{where}: raw stored length {len(stored)} != original length {orig_len}")
            return bytes(stored)
        if self.id == 1:
            out = pack_elements(decode_planes_values(stored, n, self.planes, where), E)
        else:
            out = pack_elements(decode_lossy_chunk(stored, n, self.lossy, where), E)
        assert len(out) == orig_len
        return out


# ---------------------------------------------------------------------------
# 5. Container (SPEC.md)
# ---------------------------------------------------------------------------

MAGIC = b"\x89TIC\r\n\x1a\n"
PREAMBLE_LEN = 48
SIG_LEN = 98
MiB = 1 << 20
HEADER_MAX = 256 * MiB
RECIPIENTS_MAX = 1 * MiB
FILES_MAX = 65536
TENSORS_MAX = 4194304
CHUNKS_MAX = 67108864
EXTENSIONS_MAX = 1024
CHUNK_ORIG_MAX = 64 * MiB
CHUNK_STORED_MAX = 129 * MiB
PATH_MAX = 4096
RANK_MAX = 16
PARAMS_MAX = 4096
ST_HEADER_MAX = 100_000_008
SIG_CONTEXT = b"tic artifact signature v1\x00"   # SPEC §5, 26 bytes

# SPEC §4.6: code -> (name, bits per element)
DTYPES = {0: ("BOOL", 8), 1: ("U8", 8), 2: ("I8", 8), 3: ("U16", 16), 4: ("I16", 16),
          5: ("F16", 16), 6: ("BF16", 16), 7: ("U32", 32), 8: ("I32", 32), 9: ("F32", 32),
          10: ("U64", 64), 11: ("I64", 64), 12: ("F64", 64), 13: ("F8_E4M3", 8),
          14: ("F8_E5M2", 8), 15: ("F8_E8M0", 8), 16: ("C64", 64), 17: ("F4", 4),
          18: ("F6_E2M3", 6), 19: ("F6_E3M2", 6), 20: ("F8_E4M3FNUZ", 8),
          21: ("F8_E5M2FNUZ", 8)}


def dtype_unit(code):
    """SPEC §4.6 'unit': bytes the codecs and chunks work in (1 for packed dtypes)."""
    return (DTYPES[code][1] + 7) // 8


class Preamble:
    pass


def parse_preamble(b: bytes, file_size: int) -> Preamble:
    """SPEC §3."""
    if len(b) < PREAMBLE_LEN:
        raise TicError(f"file is {file_size} bytes, shorter than the 48-byte preamble")
    if b[:8] != MAGIC:
        raise TicError("not a tic artifact (wrong magic)")
    p = Preamble()
    p.major, p.minor, p.flags = struct.unpack_from("<HHI", b, 8)
    p.header_len, p.signature_len, p.recipients_len, p.payload_len = struct.unpack_from("<4Q", b, 16)
    if p.major != 1:
        raise TicError(f"unsupported major version {p.major} (this reader knows 1)")
    # SPEC §9: a higher minor version of major 1 MUST be accepted.
    if p.flags != 0:
        raise TicError(f"nonzero preamble flags 0x{p.flags:08x}")
    if p.header_len > HEADER_MAX:
        raise TicError(f"header_len {p.header_len} over 256 MiB")
    if p.recipients_len > RECIPIENTS_MAX:
        raise TicError(f"recipients_len {p.recipients_len} over 1 MiB")
    if p.signature_len not in (0, SIG_LEN):
        raise TicError(f"signature_len {p.signature_len} is neither 0 nor 98")
    total = PREAMBLE_LEN + p.header_len + p.signature_len + p.recipients_len + p.payload_len
    if total != file_size:   # Python ints cannot overflow
        raise TicError(f"file is {file_size} bytes, the preamble says {total} "
                       "(truncated or trailing bytes)")
    return p


class Signature:
    def __init__(self, pub: bytes, sig: bytes, message: bytes):
        self.pub, self.sig, self.message = pub, sig, message

    @property
    def fingerprint(self) -> str:
        return "ed25519:" + hashlib.sha256(self.pub).digest()[:8].hex()


def signed_message(pre: Preamble, header: bytes) -> bytes:
    """SPEC §5: context ‖ u16 major ‖ u16 minor ‖ H(header bytes), 62 bytes."""
    return SIG_CONTEXT + struct.pack("<HH", pre.major, pre.minor) + hashlib.sha256(header).digest()


def check_signature(pre: Preamble, header: bytes, section: bytes, trusted: list[bytes],
                    allow_unsigned: bool) -> Signature | None:
    """SPEC §5. Returns the signature (verified and trusted) or None when the
    artifact is unsigned and the user allowed unsigned artifacts."""
    if not section:
        if not allow_unsigned:
            raise TicError("artifact is unsigned (use --allow-unsigned to read it anyway)")
        return None
    alg = struct.unpack_from("<H", section, 0)[0]
    if alg != 1:
        raise TicError(f"unknown signature algorithm {alg}")
    sig = Signature(section[2:34], section[34:98], signed_message(pre, header))
    if not ed25519_verify_strict(sig.pub, sig.message, sig.sig):
        raise TicError(f"signature by {sig.fingerprint} does not verify")
    # Trust only by comparing with pinned keys (SPEC §5).
    if trusted:
        if not any(hmac.compare_digest(sig.pub, k) for k in trusted):
            raise TicError(f"signer {sig.fingerprint} is not among the trusted keys")
        sig.trusted = True
    else:
        # SPEC §5: with no key pinned, a signed artifact is read only when
        # unsigned ones are allowed, and its signer is reported as unchecked.
        if not allow_unsigned:
            raise TicError(f"artifact signed by {sig.fingerprint} but no --trust key given "
                           "(use --trust, or --allow-unsigned to read it unverified)")
        sig.trusted = False
    return sig


class FileEntry:
    pass


class TensorEntry:
    pass


class ChunkEntry:
    __slots__ = ("offset", "stored_len", "orig_len", "sha256")


class Header:
    pass


def check_path(path: str) -> None:
    """SPEC §6."""
    if not path:
        raise TicError("empty file path")
    if len(path.encode("utf-8")) > PATH_MAX:
        raise TicError("file path over 4096 bytes")
    if path.startswith("/"):
        raise TicError(f"absolute file path {path!r}")
    for bad in ("\\", "\x00", ":"):
        if bad in path:
            raise TicError(f"file path {path!r} contains a forbidden character {bad!r}")
    for comp in path.split("/"):
        if comp in ("", ".", ".."):
            raise TicError(f"file path {path!r} has an empty, '.' or '..' component")


def _check_count(r: Reader, count: int, limit: int, min_size: int, what: str) -> None:
    """SPEC §4.1: counts are claims, checked before allocating."""
    if count > limit:
        raise TicError(f"header: {what} count {count} over the limit {limit}")
    if count * min_size > r.remaining():
        raise TicError(f"header: {count} {what} entries cannot fit in the "
                       f"{r.remaining()} header bytes left")


def parse_header(buf: bytes, pre: Preamble, st_json: bool = True) -> Header:
    """SPEC §4, then the rules of §6 and §7 (`st_json`: see check_consistency).
    Only called after the signature check (SPEC §5)."""
    r = Reader(buf, "header")
    h = Header()
    h.creator = r.utf8(r.u8("creator length"), "creator")
    h.payload_len = r.u64("payload_len")
    if h.payload_len != pre.payload_len:
        raise TicError("header payload_len differs from the preamble's")
    h.encryption = r.u8("encryption")
    if h.encryption not in (0, 1):
        raise TicError(f"unknown encryption value {h.encryption}")
    h.salt = h.commitment = None
    if h.encryption == 1:
        h.salt = r.take(32, "salt")
        h.commitment = r.take(32, "commitment")

    n = r.u32("file_count")
    _check_count(r, n, FILES_MAX, 55, "file")
    h.files = []
    for i in range(n):
        f = FileEntry()
        f.path = r.utf8(r.u16("path length"), "path")
        f.kind = r.u8("file kind")
        if f.kind not in (0, 1):
            # SPEC §4.2: other kinds MUST be rejected.
            raise TicError(f"file {f.path!r}: unknown kind {f.kind}")
        f.size = r.u64("file size")
        f.sha256 = r.take(32, "file sha256")
        st_len = r.u32("st_header length")
        if st_len > ST_HEADER_MAX:
            raise TicError(f"file {f.path!r}: st_header over {ST_HEADER_MAX} bytes")
        f.st_header = r.take(st_len, "st_header")
        f.first_tensor = r.u32("first_tensor")
        f.tensor_count = r.u32("tensor_count")
        h.files.append(f)

    n = r.u32("tensor_count")
    _check_count(r, n, TENSORS_MAX, 57, "tensor")
    h.tensors = []
    for i in range(n):
        t = TensorEntry()
        t.index = i
        t.name = r.utf8(r.u16("tensor name length"), "tensor name")
        t.dtype = r.u8("dtype")
        if t.dtype not in DTYPES:
            raise TicError(f"tensor {t.name!r}: unknown dtype code {t.dtype}")
        rank = r.u8("rank")
        if rank > RANK_MAX:
            raise TicError(f"tensor {t.name!r}: rank {rank} over 16")
        t.shape = [r.u64("shape") for _ in range(rank)]
        t.codec_id = r.u16("codec_id")
        plen = r.u16("codec_params length")
        if plen > PARAMS_MAX:
            raise TicError(f"tensor {t.name!r}: codec params over 4096 bytes")
        t.codec_params = r.take(plen, "codec_params")
        t.orig_len = r.u64("tensor orig_len")
        t.sha256 = r.take(32, "tensor sha256")
        t.first_chunk = r.u32("first_chunk")
        t.chunk_count = r.u32("chunk_count")
        t.lossy = r.u8("lossy")
        t.lossy_record = None
        if t.lossy == 1:
            kind = r.u8("bound_kind")
            figs = struct.unpack("<5d", r.take(40, "lossy record"))
            t.lossy_record = {"bound_kind": kind, "bound": figs[0], "max_abs": figs[1],
                              "max_rel": figs[2], "mean_rel": figs[3], "rms_rel": figs[4]}
        elif t.lossy != 0:
            # SPEC §4.3: other values MUST be rejected.
            raise TicError(f"tensor {t.name!r}: lossy flag {t.lossy} is neither 0 nor 1")
        # SPEC §9: an unknown codec id is rejected at parse time; params are
        # validated for the dtype here too (SPEC §7 rule 4).
        try:
            t.codec = Codec(t.codec_id, t.codec_params, dtype_unit(t.dtype))
        except CodecError as e:
            raise TicError(f"tensor {t.name!r}: {e}") from None
        h.tensors.append(t)

    n = r.u32("chunk_count")
    _check_count(r, n, CHUNKS_MAX, 56, "chunk")
    h.chunks = []
    for i in range(n):
        c = ChunkEntry()
        c.offset, c.stored_len, c.orig_len = struct.unpack("<3Q", r.take(24, "chunk entry"))
        c.sha256 = r.take(32, "chunk sha256")
        h.chunks.append(c)

    n = r.u32("extension_count")
    _check_count(r, n, EXTENSIONS_MAX, 7, "extension")
    h.extensions = []
    for i in range(n):
        kind = r.u16("extension kind")
        flags = r.u8("extension flags")
        data = r.take(r.u32("extension data length"), "extension data")
        if flags == 1:
            raise TicError(f"unknown critical extension kind {kind}")   # v1.0 knows none
        if flags != 0:
            # SPEC §4.5: other flags MUST be rejected.
            raise TicError(f"extension kind {kind}: flags {flags} is neither 0 nor 1")
        h.extensions.append((kind, len(data)))   # ignorable: skipped
    if r.remaining():
        raise TicError(f"header: {r.remaining()} bytes left after the last field")
    check_consistency(h, st_json)
    return h


def _finite_nonneg(x: float) -> bool:
    return math.isfinite(x) and x >= 0


def check_consistency(h: Header, st_json: bool = True) -> None:
    """SPEC §6 and §7: the MUST rules, then (with `st_json`) the SHOULD check
    of each st_header's JSON against the tensor entries."""
    # §6 paths: valid, unique, none a directory prefix of another
    paths = set()
    for f in h.files:
        check_path(f.path)
        if f.path in paths:
            raise TicError(f"duplicate file path {f.path!r}")
        paths.add(f.path)
    for f in h.files:
        comps = f.path.split("/")
        for k in range(1, len(comps)):
            if "/".join(comps[:k]) in paths:
                raise TicError(f"path {'/'.join(comps[:k])!r} is also a directory of {f.path!r}")

    # rule 1: files own consecutive runs of tensors
    nt = 0
    for f in h.files:
        if f.first_tensor != nt:
            raise TicError(f"file {f.path!r}: first_tensor {f.first_tensor}, expected {nt}")
        nt += f.tensor_count
        if nt > len(h.tensors):
            raise TicError(f"file {f.path!r}: tensor run past the tensor table")
    if nt != len(h.tensors):
        raise TicError("files do not cover every tensor entry")

    for f in h.files:
        ts = h.tensors[f.first_tensor:f.first_tensor + f.tensor_count]
        f.tensors = ts
        # rule 2
        if f.kind == 0:
            if (len(ts) != 1 or ts[0].name != "" or DTYPES[ts[0].dtype][0] != "U8"
                    or f.st_header):
                raise TicError(f"blob {f.path!r}: must have one unnamed U8 tensor and no st_header")
            if len(ts[0].shape) != 1:
                raise TicError(f"blob {f.path!r}: its tensor's shape must be [size]")
        else:
            if len(f.st_header) < 8:
                raise TicError(f"safetensors file {f.path!r}: st_header shorter than 8 bytes")
            N = struct.unpack_from("<Q", f.st_header, 0)[0]
            if N != len(f.st_header) - 8:
                raise TicError(f"{f.path!r}: st_header length prefix {N} != {len(f.st_header) - 8}")
            names = [t.name for t in ts]
            if len(set(names)) != len(names):
                raise TicError(f"safetensors file {f.path!r}: repeated tensor name")
        # rule 3
        if f.size != len(f.st_header) + sum(t.orig_len for t in ts):
            raise TicError(f"file {f.path!r}: size {f.size} != st_header + tensor lengths")
        for t in ts:
            t.file = f

    # rule 4
    for t in h.tensors:
        prod = 1
        for d in t.shape:
            prod *= d
            if prod > 0xFFFFFFFFFFFFFFFF:
                raise TicError(f"tensor {t.name!r}: shape product overflows u64")
        nbits = prod * DTYPES[t.dtype][1]
        if nbits > 0xFFFFFFFFFFFFFFFF or nbits % 8 or nbits // 8 != t.orig_len:
            raise TicError(f"tensor {t.name!r}: shape x dtype bits {nbits} is not 8 x orig_len {t.orig_len}")
        lossy_codec = t.codec.lossy is not None
        if lossy_codec != (t.lossy_record is not None):
            raise TicError(f"tensor {t.name!r}: lossy record present iff the codec is lossy")
        if lossy_codec:
            lp = t.codec.lossy
            if lp.dtype != t.dtype:
                raise TicError(f"tensor {t.name!r}: dtype differs from the codec params' dtype")
            kind, bound = lp.bound()
            rec = t.lossy_record
            if rec["bound_kind"] != kind or rec["bound"] != bound:
                raise TicError(f"tensor {t.name!r}: lossy record bound ({rec['bound_kind']}, "
                               f"{rec['bound']}) differs from the codec's ({kind}, {bound})")
            for k in ("max_abs", "max_rel", "mean_rel", "rms_rel"):
                if not _finite_nonneg(rec[k]):
                    raise TicError(f"tensor {t.name!r}: lossy record {k} is negative, infinite or NaN")

    # rule 5: tensors own consecutive runs of chunks
    nc = 0
    for t in h.tensors:
        if (t.chunk_count == 0) != (t.orig_len == 0):
            raise TicError(f"tensor {t.name!r}: chunk_count 0 exactly when orig_len 0")
        # Also for a chunkless (empty) tensor: the running sum.
        if t.first_chunk != nc:
            raise TicError(f"tensor {t.name!r}: first_chunk {t.first_chunk}, expected {nc}")
        nc += t.chunk_count
        if nc > len(h.chunks):
            raise TicError(f"tensor {t.name!r}: chunk run past the chunk table")
        E = dtype_unit(t.dtype)
        total = 0
        for c in h.chunks[t.first_chunk:t.first_chunk + t.chunk_count]:
            if c.orig_len == 0 or c.orig_len > CHUNK_ORIG_MAX or c.orig_len % E:
                raise TicError(f"tensor {t.name!r}: chunk orig_len {c.orig_len} invalid")
            total += c.orig_len
        if total != t.orig_len:
            raise TicError(f"tensor {t.name!r}: chunks add up to {total}, orig_len is {t.orig_len}")
    if nc != len(h.chunks):
        raise TicError("tensors do not cover every chunk")

    # rule 6: payload without holes or overlaps
    off = 0
    for i, c in enumerate(h.chunks):
        if c.offset != off:
            raise TicError(f"chunk {i}: offset {c.offset}, expected {off}")
        if c.stored_len > CHUNK_STORED_MAX:
            raise TicError(f"chunk {i}: stored_len over 129 MiB")
        if h.encryption == 1 and c.stored_len < 16:
            raise TicError(f"chunk {i}: stored_len below 16 in an encrypted artifact")
        off += c.stored_len
    if off != h.payload_len:
        raise TicError(f"chunks add up to {off} bytes, payload_len is {h.payload_len}")

    if st_json:
        for f in h.files:
            if f.kind == 1:
                check_st_header(f)


def check_st_header(f: FileEntry) -> None:
    """SPEC §7 (SHOULD): the st_header describes the same tensors as the entries."""
    st = f.st_header

    def no_dups(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise ValueError(f"duplicate key {k!r}")
            d[k] = v
        return d
    try:
        meta = json.loads(st[8:].decode("utf-8"), object_pairs_hook=no_dups)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise TicError(f"{f.path!r}: st_header JSON is invalid ({e})") from None
    if not isinstance(meta, dict):
        raise TicError(f"{f.path!r}: st_header JSON is not an object")
    entries = {k: v for k, v in meta.items() if k != "__metadata__"}
    if set(entries) != {t.name for t in f.tensors}:
        raise TicError(f"{f.path!r}: st_header tensor names differ from the tensor entries")
    off = 0
    for t in f.tensors:
        e = entries[t.name]
        if not isinstance(e, dict):
            raise TicError(f"{f.path!r}: st_header entry {t.name!r} malformed")
        if (e.get("dtype") != DTYPES[t.dtype][0] or e.get("shape") != t.shape
                or e.get("data_offsets") != [off, off + t.orig_len]):
            raise TicError(f"{f.path!r}: st_header entry {t.name!r} differs from its tensor entry")
        off += t.orig_len


# --- recipients section (ENCRYPTION §5) -------------------------------------

class RecipientEntry:
    def __init__(self, kind: int, label: str, body: bytes):
        self.kind, self.label, self.body = kind, label, body


def parse_recipients(buf: bytes) -> list[RecipientEntry]:
    """ENCRYPTION §5.4."""
    if len(buf) > RECIPIENTS_MAX:
        raise TicError("recipients section over 1 MiB")
    r = Reader(buf, "recipients section")
    if r.take(4, "magic") != b"TICR":
        raise TicError("recipients section: bad magic")
    count = r.u16("entry_count")
    if count == 0 or count > 1024:
        raise TicError(f"recipients section: entry_count {count} not in 1..1024")
    entries, labels = [], set()
    for i in range(count):
        kind = r.u8("kind")
        ll = r.u16("label_len")
        if ll > 256:
            raise TicError(f"recipients entry {i}: label_len {ll} over 256")
        label = r.utf8(ll, "label")
        bl = r.u32("body_len")
        if bl > 65536:
            raise TicError(f"recipients entry {i}: body_len {bl} over 65536")
        body = r.take(bl, "body")
        if label in labels:
            raise TicError(f"recipients section: duplicate label {label!r}")
        labels.add(label)
        if kind == 1:
            try:
                hrp, pub = bech32_decode(label)
            except TicError:
                hrp, pub = None, b""
            if hrp != "age" or len(pub) != 32 or label != label.lower():
                raise TicError(f"recipients entry {i}: label is not an age1... X25519 recipient")
            age_parse(body)   # "begins with a well-formed age v1 header"
        elif kind == 2:
            if (len(label) != 20 or not label.startswith("sym:")
                    or any(c not in "0123456789abcdef" for c in label[4:])):
                raise TicError(f"recipients entry {i}: label is not 'sym:' + 16 lowercase hex digits")
            if len(body) != 60:
                raise TicError(f"recipients entry {i}: symmetric body is not 60 bytes")
        else:
            raise TicError(f"recipients entry {i}: unknown kind {kind}")
        entries.append(RecipientEntry(kind, label, body))
    if r.remaining():
        raise TicError("recipients section: bytes after the last entry")
    return entries


def derive_keys(file_key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """ENCRYPTION §3 -> (payload key, commitment)."""
    prk = hkdf_extract(salt, file_key)
    return hkdf_expand(prk, b"tic v1 payload key", 32), hkdf_expand(prk, b"tic v1 key commitment", 32)


def symmetric_kek_and_label(K: bytes) -> tuple[bytes, str]:
    """ENCRYPTION §5.3."""
    kek = hkdf(b"", K, b"tic v1 symmetric wrap", 32)
    key_id = hkdf(b"", K, b"tic v1 symmetric key id", 8)
    return kek, "sym:" + key_id.hex()


def unwrap_file_key(entries, salt: bytes, commitment: bytes, symkeys: list[bytes],
                    age_ids: list[bytes]) -> tuple[bytes, str]:
    """ENCRYPTION §5.5. Returns (payload key, label of the entry that opened)."""
    failed_commit, corrupt = [], []
    sym = [symmetric_kek_and_label(K) for K in symkeys]
    ages = [(ident, x25519(ident, X25519_BASE)) for ident in age_ids]
    for e in entries:
        candidates = []
        if e.kind == 2:
            for kek, own_label in sym:
                fk = aead_open(kek, e.body[:12], b"tic v1 file key", e.body[12:])
                if fk is not None:
                    candidates.append(fk)
                elif own_label == e.label:
                    corrupt.append(e.label)
        else:
            for ident, _pub in ages:
                try:
                    fk = age_decrypt_x25519(e.body, ident)
                except AgeNoMatch:
                    continue
                except TicError as ex:
                    corrupt.append(f"{e.label} ({ex})")
                    continue
                if len(fk) != 32:
                    corrupt.append(f"{e.label} (opens to {len(fk)} bytes, not 32)")
                    continue
                candidates.append(fk)
        for fk in candidates:
            payload_key, com = derive_keys(fk, salt)
            if hmac.compare_digest(com, commitment):
                return payload_key, e.label
            failed_commit.append(e.label)
    if failed_commit:
        raise TicError("a key opened recipient entry " + ", ".join(failed_commit) +
                       " but failed the key commitment: the recipients section was "
                       "replaced or corrupted")
    if corrupt:
        raise TicError("recipient entry for the given identity is corrupt: " + "; ".join(corrupt))
    given = [lbl for _, lbl in sym] + [age_recipient_string(p) for _, p in ages]
    raise TicError(f"none of the {len(entries)} recipient entries ("
                   + ", ".join(e.label for e in entries) + ") matches the identities given ("
                   + (", ".join(given) or "none") + ")")


def chunk_nonce(i: int, n: int) -> bytes:
    """ENCRYPTION §4.1: 3 zero bytes, u64 big-endian index, last flag."""
    return b"\x00\x00\x00" + i.to_bytes(8, "big") + (b"\x01" if i == n - 1 else b"\x00")


# ---------------------------------------------------------------------------
# 6. Reading an artifact
# ---------------------------------------------------------------------------

class Result:
    pass


def read_artifact(path: str, trusted: list[bytes], allow_unsigned: bool,
                  symkeys: list[bytes], age_ids: list[bytes], decode: bool = True) -> Result:
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise TicError(f"cannot open {path}: {e.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        pre = parse_preamble(fh.read(PREAMBLE_LEN), size)
        header = fh.read(pre.header_len)
        sig_section = fh.read(pre.signature_len)
        recipients = fh.read(pre.recipients_len)
        payload_start = fh.tell()
        if len(header) != pre.header_len or len(sig_section) != pre.signature_len \
                or len(recipients) != pre.recipients_len:
            raise TicError("file changed or truncated while reading")

        res = Result()
        res.preamble = pre
        res.signed_message = signed_message(pre, header)
        # SPEC §5: the signature is checked before the header is parsed.
        res.signature = check_signature(pre, header, sig_section, trusted, allow_unsigned)
        h = parse_header(header, pre)
        res.header = h

        # SPEC §3 / ENCRYPTION §5: the section is present exactly when encrypted.
        if h.encryption == 0 and pre.recipients_len:
            raise TicError("recipients section present in an unencrypted artifact")
        if h.encryption == 1 and not pre.recipients_len:
            raise TicError("encrypted artifact without a recipients section")
        res.recipients = parse_recipients(recipients) if h.encryption else []

        payload_key, res.unlocked_by = None, None
        if h.encryption and decode:
            if not symkeys and not age_ids:
                raise TicError("artifact is encrypted: give --symkey or --identity "
                               "(signature and header verified)")
            payload_key, res.unlocked_by = unwrap_file_key(res.recipients, h.salt, h.commitment,
                                                           symkeys, age_ids)

        # SPEC §8: every chunk's digest, then (if decoding) open and decode.
        N = len(h.chunks)
        tensor_data = {}
        for t in h.tensors:
            parts = []
            for ci in range(t.first_chunk, t.first_chunk + t.chunk_count):
                c = h.chunks[ci]
                fh.seek(payload_start + c.offset)
                stored = fh.read(c.stored_len)
                if len(stored) != c.stored_len:
                    raise TicError("file changed or truncated while reading")
                if hashlib.sha256(stored).digest() != c.sha256:
                    raise TicError(f"chunk {ci} of tensor {t.name!r}: SHA-256 mismatch")
                if not decode:
                    continue
                if h.encryption:
                    stored = aead_open(payload_key, chunk_nonce(ci, N), b"", stored)
                    if stored is None:
                        raise TicError(f"chunk {ci} of tensor {t.name!r}: authentication tag mismatch")
                try:
                    parts.append(t.codec.decode(stored, c.orig_len, f"chunk {ci}"))
                except CodecError as e:
                    raise TicError(f"tensor {t.name!r}: {e}") from None
            if decode:
                data = b"".join(parts)
                if hashlib.sha256(data).digest() != t.sha256:
                    raise TicError(f"tensor {t.name!r}: SHA-256 of decoded bytes mismatch")
                tensor_data[t.index] = data
        res.file_data = {}
        if decode:
            for f in h.files:
                data = f.st_header + b"".join(tensor_data[t.index] for t in f.tensors)
                if len(data) != f.size or hashlib.sha256(data).digest() != f.sha256:
                    raise TicError(f"file {f.path!r}: SHA-256 of restored file mismatch")
                res.file_data[f.path] = data
        res.decoded = decode
        return res


def write_files(res: Result, out_dir: str) -> None:
    """SPEC §6: join each path under the output directory and nowhere else.
    Only called after every digest of the artifact has been checked."""
    os.makedirs(out_dir, exist_ok=True)
    root = os.path.realpath(out_dir)
    for path, data in res.file_data.items():
        comps = path.split("/")
        parent = os.path.join(root, *comps[:-1])
        os.makedirs(parent, exist_ok=True)
        real_parent = os.path.realpath(parent)
        if os.path.commonpath([root, real_parent]) != root:
            raise TicError(f"{path!r}: would be written outside the output directory")
        target = os.path.join(real_parent, comps[-1])
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) \
            | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(target, flags, 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except OSError as e:
            raise TicError(f"cannot write {path!r}: {e.strerror}") from None


def report(res: Result) -> dict:
    pre, h = res.preamble, res.header
    sig = res.signature
    return {
        "format_version": f"{pre.major}.{pre.minor}",
        "creator": h.creator,
        "signed": sig is not None,
        "signer": sig.fingerprint if sig else None,
        "signer_trusted": bool(sig and sig.trusted),
        "signed_message": res.signed_message.hex(),
        "encryption": "chacha20-poly1305-stream" if h.encryption else "none",
        "recipients": [{"kind": "age" if e.kind == 1 else "symmetric", "label": e.label}
                       for e in res.recipients],
        "unlocked_by": res.unlocked_by,
        "extensions_skipped": len(h.extensions),
        "files": [{"path": f.path, "kind": "safetensors" if f.kind else "blob", "size": f.size,
                   "sha256": f.sha256.hex()} for f in h.files],
        "tensors": [{"name": t.name, "file": t.file.path, "dtype": DTYPES[t.dtype][0],
                     "shape": t.shape, "codec": t.codec.name(), "orig_len": t.orig_len,
                     "chunks": t.chunk_count, "sha256": t.sha256.hex(),
                     **({"lossy": t.lossy_record} if t.lossy_record else {})}
                    for t in h.tensors],
        "chunks": len(h.chunks),
        "decoded": res.decoded,
        "ok": True,
    }


# ---------------------------------------------------------------------------
# 7. Self-test and CLI
# ---------------------------------------------------------------------------

class SelfTest:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, name: str, fn) -> None:
        try:
            detail = fn()   # None/True/str (a note) = pass; False = fail
            ok = detail is not False
            msg = detail if isinstance(detail, str) else ""
        except TicError as e:
            ok, msg = False, f"error: {e}"
        except Exception as e:   # a bug in this reader: report, keep going
            ok, msg = False, f"internal error: {type(e).__name__}: {e}"
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({msg})" if msg else ""), flush=True)


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise TicError(what)


def _expect_reject(fn, must_contain: str) -> str:
    try:
        fn()
    except TicError as e:
        if must_contain.lower() not in str(e).lower():
            raise TicError(f"rejected, but with an unexpected message: {e}")
        return f"rejected: {e}"
    raise TicError("accepted input that must be rejected")


def _load_vector(vector_dir: str, fn: str):
    """A codec or lossy vector (CODECS §8, LOSSY §7): its JSON, its stored
    chunk (checked against the JSON's length and digest) and its codec
    (checked against the JSON's display name)."""
    d = json.load(open(os.path.join(vector_dir, fn)))
    stored = open(os.path.join(vector_dir, d["stored_file"]), "rb").read()
    _expect(len(stored) == d["stored_len"] and
            hashlib.sha256(stored).hexdigest() == d["stored_sha256"], "stored file digest")
    c = Codec(d["codec_id"], bytes.fromhex(d["params_hex"]), d["elem_size"])
    _expect(c.name() == d["codec_name"], f"codec name {c.name()} != {d['codec_name']}")
    return d, stored, c


def _codec_vectors(st: SelfTest, vdir: str) -> None:
    cdir = os.path.join(vdir, "codec")
    for fn in sorted(os.listdir(cdir)):
        if not fn.endswith(".json"):
            continue
        def run(fn=fn):
            d, stored, c = _load_vector(cdir, fn)
            out = c.decode(stored, d["original_len"])
            _expect(len(out) // d["elem_size"] == d["elements"], "element count")
            _expect(hashlib.sha256(out).hexdigest() == d["original_sha256"], "original sha256 mismatch")
            if "original_hex" in d:
                _expect(out.hex() == d["original_hex"], "original bytes mismatch")
            return f"{d['codec_name']}, {d['elements']} elements"
        st.check(f"codec/{fn[:-5]}", run)

    def worked_example():   # CODECS §7
        stored = bytes.fromhex(
            "51000000" "02" "7e00" "0200" "1202" "00000000" "0100010001000100" "0200"
            + "0000" * 27 + "000001000302" "06000000" "00" "0001000000")
        _expect(len(stored) == 95, "example length")
        out = Codec(1, bytes.fromhex("01020808"), 2).decode(stored, 10)
        _expect(out.hex() == "803f80bf003f803f0040", f"decoded {out.hex()}")
    st.check("CODECS.md §7 worked example", worked_example)


def _lossy_vectors(st: SelfTest, vdir: str) -> None:
    ldir = os.path.join(vdir, "lossy")
    for fn in sorted(os.listdir(ldir)):
        if not fn.endswith(".json"):
            continue
        def run(fn=fn):
            d, stored, c = _load_vector(ldir, fn)
            _expect(DTYPES[c.lossy.dtype][0] == d["dtype"], "dtype")
            _expect(c.lossy.bound() == (d["bound_kind"], d["bound"]), "bound")
            out = c.decode(stored, d["decoded_len"])
            _expect(out.hex() == d["decoded_hex"], "decoded bytes mismatch")
            _expect(hashlib.sha256(out).hexdigest() == d["decoded_sha256"], "decoded sha256 mismatch")
            bad = check_bound(bytes.fromhex(d["input_hex"]), out, c.lossy, d["bound_kind"], d["bound"])
            _expect(bad is None, f"element outside the bound: {bad}")
            return f"{d['codec_name']}, {d['elements']} elements, all within the bound"
        st.check(f"lossy/{fn[:-5]}", run)

    def worked_example():   # LOSSY §6
        stored = bytes.fromhex("1b000000" "03000000010000" "07000000007f007f00ff7b"
                               "050000000000c00028" "01000000" "01" "a57f")
        c = Codec(2, bytes.fromhex("06040003030805"), 2)
        out = c.decode(stored, 12)
        _expect(out == struct.pack("<6H", 0x3f80, 0x7fa5, 0x3fc0, 0x8000, 0x7f80, 0x3dd0),
                f"decoded {out.hex()}")
    st.check("LOSSY.md §6 worked example", worked_example)

    def round_f():   # round_F against the platform's F32/F16 conversions
        import random
        rng = random.Random(1)
        for _ in range(20000):
            v = math.ldexp(rng.uniform(-2, 2), rng.randint(-160, 140))
            for fmt, dt in (("<f", 9), ("<e", 5)):
                _, W, EB, M, bias = LOSSY_FORMATS[dt]
                try:
                    want = int.from_bytes(struct.pack(fmt, v), "little")
                except OverflowError:
                    want = ((1 if v < 0 else 0) << (W - 1)) | (((1 << EB) - 1) << M)
                got = round_to_format(v, W, EB, M, bias)
                _expect(got == want, f"round_F({v!r}) to {fmt}: {got:x} != {want:x}")
    st.check("round_F matches IEEE conversions (F32, F16; 40000 values)", round_f)


def check_bound(inp: bytes, out: bytes, lp: LossyParams, kind: int, bound: float):
    """LOSSY §5 for each element; returns a description of the first failure."""
    name, W, EB, M, bias = lp.fmt
    E = W // 8
    fmt = {5: "<e", 9: "<f"}.get(lp.dtype)

    def val(bits):
        if lp.dtype == 6:   # BF16: top half of an F32
            return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
        return struct.unpack(fmt, bits.to_bytes(E, "little"))[0]
    for i in range(len(inp) // E):
        xb = int.from_bytes(inp[i * E:(i + 1) * E], "little")
        yb = int.from_bytes(out[i * E:(i + 1) * E], "little")
        x, y = val(xb), val(yb)
        if math.isnan(x) or math.isinf(x) or x == 0:
            if xb != yb:
                return f"element {i}: special value not kept bit-exact"
            continue
        if (xb >> (W - 1)) != (yb >> (W - 1)) or not math.isfinite(y):
            return f"element {i}: sign or finiteness"
        err = abs(y - x)
        lim = bound if kind == 2 else bound * abs(x)
        if err > lim or (kind == 1 and y == 0):
            return f"element {i}: |{y} - {x}| > {lim}"
    return None


def _encryption_vector(st: SelfTest, vdir: str) -> None:
    d = json.load(open(os.path.join(vdir, "encryption", "tic-v1-encryption.json")))
    fk, salt = bytes.fromhex(d["file_key"]), bytes.fromhex(d["salt"])

    def keys():
        pk, com = derive_keys(fk, salt)
        _expect(pk.hex() == d["payload_key"], "payload key")
        _expect(com.hex() == d["commitment"], "commitment")
    st.check("encryption: payload key and commitment (HKDF)", keys)

    def chunks():
        pk = bytes.fromhex(d["payload_key"])
        N = d["chunk_count"]
        for c in d["chunks"]:
            i = c["index"]
            _expect(c["last"] == (i == N - 1) and c["initial_block_counter"] == 1, "vector fields")
            nonce = chunk_nonce(i, N)
            _expect(nonce.hex() == c["nonce"], f"nonce of chunk {i}")
            pt, stored = bytes.fromhex(c["plaintext"]), bytes.fromhex(c["stored"])
            _expect(aead_seal(pk, nonce, b"", pt) == stored, f"seal of chunk {i}")
            _expect(aead_open(pk, nonce, b"", stored) == pt, f"open of chunk {i}")
            # under another index or the other last flag the tag must fail (ENCRYPTION §6.5)
            flipped = nonce[:11] + bytes([nonce[11] ^ 1])
            _expect(aead_open(pk, flipped, b"", stored) is None, f"chunk {i} opened with the last flag flipped")
            _expect(aead_open(pk, chunk_nonce(1 - i, N), b"", stored) is None, f"chunk {i} opened at another index")
        return f"{N} chunks sealed and opened byte for byte"
    st.check("encryption: chunk nonces and ChaCha20-Poly1305 sealing", chunks)

    def symmetric():
        kek, label = symmetric_kek_and_label(bytes.fromhex(d["symmetric_key"]))
        _expect(kek.hex() == d["symmetric_kek"], "symmetric KEK")
        _expect(label == d["symmetric_label"], f"symmetric label {label}")
    st.check("encryption: symmetric KEK and key id label", symmetric)

    def recipients():
        entries = parse_recipients(bytes.fromhex(d["recipients_section"]))
        _expect([e.kind for e in entries] == [1, 2], "entry kinds")
        _expect(entries[0].label == d["age_recipient"], "age label")
        _expect(entries[1].label == d["symmetric_label"], "symmetric label")
        hrp, ident = bech32_decode(d["age_identity"])
        _expect(hrp == "age-secret-key-" and len(ident) == 32, "age identity")
        _expect(age_recipient_string(x25519(ident, X25519_BASE)) == d["age_recipient"],
                "age recipient derived from the identity")
        com = bytes.fromhex(d["commitment"])
        pk = bytes.fromhex(d["payload_key"])
        got, lbl = unwrap_file_key(entries, salt, com, [], [ident])
        _expect(got == pk and lbl == d["age_recipient"], "age unwrap")
        _expect(age_decrypt_x25519(entries[0].body, ident) == fk, "age body plaintext")
        got, lbl = unwrap_file_key(entries, salt, com, [bytes.fromhex(d["symmetric_key"])], [])
        _expect(got == pk and lbl == d["symmetric_label"], "symmetric unwrap")
        body = entries[1].body
        _expect(aead_seal(bytes.fromhex(d["symmetric_kek"]), body[:12], b"tic v1 file key", fk)
                == body[12:], "symmetric body re-seal")
        # a key that opens but does not match the commitment must be refused
        _expect_reject(lambda: unwrap_file_key(entries, bytes(32), com, [], [ident]), "commitment")
        return "parsed; age and symmetric entries unwrap to file_key and pass the commitment"
    st.check("encryption: recipients section", recipients)


def _wycheproof(st: SelfTest, vdir: str) -> None:
    wdir = os.path.join(vdir, "wycheproof")

    def chacha():
        d = json.load(open(os.path.join(wdir, "chacha20_poly1305_test.json")))
        n = skipped = 0
        for g in d["testGroups"]:
            for tc in g["tests"]:
                key, iv = bytes.fromhex(tc["key"]), bytes.fromhex(tc["iv"])
                if len(iv) != 12:
                    skipped += 1
                    continue
                aad, msg = bytes.fromhex(tc["aad"]), bytes.fromhex(tc["msg"])
                ct, tag = bytes.fromhex(tc["ct"]), bytes.fromhex(tc["tag"])
                opened = aead_open(key, iv, aad, ct + tag)
                if tc["result"] == "valid":
                    _expect(aead_seal(key, iv, aad, msg) == ct + tag, f"tcId {tc['tcId']} seal")
                    _expect(opened == msg, f"tcId {tc['tcId']} open")
                else:
                    _expect(opened is None, f"tcId {tc['tcId']} invalid vector opened")
                n += 1
        return f"{n} run, {skipped} skipped (nonce not 12 bytes)"
    st.check("wycheproof: ChaCha20-Poly1305", chacha)

    def hk():
        d = json.load(open(os.path.join(wdir, "hkdf_sha256_test.json")))
        n = 0
        for g in d["testGroups"]:
            for tc in g["tests"]:
                args = (bytes.fromhex(tc["salt"]), bytes.fromhex(tc["ikm"]), bytes.fromhex(tc["info"]))
                if tc["result"] == "valid":
                    _expect(hkdf(*args, tc["size"]).hex() == tc["okm"], f"tcId {tc['tcId']}")
                else:
                    _expect_reject(lambda: hkdf(*args, tc["size"]), "HKDF")
                n += 1
        return f"{n} run"
    st.check("wycheproof: HKDF-SHA256", hk)

    def xdh():
        d = json.load(open(os.path.join(wdir, "x25519_test.json")))
        n = 0
        for g in d["testGroups"]:
            for tc in g["tests"]:
                got = x25519(bytes.fromhex(tc["private"]), bytes.fromhex(tc["public"]))
                _expect(got.hex() == tc["shared"], f"tcId {tc['tcId']}")
                n += 1
        return f"{n} run"
    st.check("wycheproof: X25519", xdh)


def _ed25519_tests(st: SelfTest, vdir: str) -> None:
    def rfc8032():   # RFC 8032 §7.1, TEST 1
        seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        pub = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        sig = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
                            "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
        _expect(ed25519_public_from_seed(seed) == pub, "public key")
        _expect(ed25519_sign(seed, b"") == sig, "signature")
        _expect(ed25519_verify_strict(pub, b"", sig), "verify")
        _expect(not ed25519_verify_strict(pub, b"x", sig), "verify of a wrong message")
        S = int.from_bytes(sig[32:], "little")
        _expect(not ed25519_verify_strict(pub, b"", sig[:32] + (S + _L).to_bytes(32, "little")),
                "non-canonical S accepted")
        ident = (1).to_bytes(32, "little")   # identity point: small order
        _expect(not ed25519_verify_strict(ident, b"", sig), "small-order key accepted")
    st.check("ed25519: RFC 8032 test 1 and strictness", rfc8032)

    def keypair():
        art = os.path.join(vdir, "artifacts")
        seed = load_ed25519_seed(os.path.join(art, "signing.key"))
        _expect(ed25519_public_from_seed(seed) == load_ed25519_public(os.path.join(art, "signing.pub")),
                "signing.key does not match signing.pub")
    st.check("ed25519: signing.key matches signing.pub", keypair)


def _artifact_tests(st: SelfTest, vdir: str) -> None:
    import tempfile
    art = os.path.join(vdir, "artifacts")
    expected = json.load(open(os.path.join(art, "expected.json")))
    pub = load_ed25519_public(os.path.join(art, "signing.pub"))
    symkey = load_symkey(os.path.join(art, "recipient.symkey"))
    age_ids = load_age_identities(os.path.join(art, "recipient.agekey"))
    def load_model(folder):
        return {fn: open(os.path.join(art, folder, fn), "rb").read()
                for fn in sorted(os.listdir(os.path.join(art, folder)))}

    small = load_model("small-model")

    def compare(name, res, rep, model=small, folder="small-model"):
        exp = expected[name]
        _expect(rep["signer"] == exp["signer"], f"signer {rep['signer']}")
        _expect(rep["signed_message"] == exp["signed_message"], "signed message")
        _expect(len(rep["recipients"]) == exp["recipients"], "recipient count")
        files = [{k: f[k] for k in ("path", "sha256", "size")} for f in rep["files"]]
        _expect(files == exp["files"], "files differ from expected.json")
        # expected.json lists only the named (safetensors) tensors, not the
        # unnamed tensor entry of a blob.
        tensors = [{k: t[k] for k in ("codec", "dtype", "name", "sha256", "shape")}
                   for t in rep["tensors"] if t["name"]]
        _expect(tensors == exp["tensors"], "tensors differ from expected.json")
        _expect(sorted(res.file_data) == sorted(model), f"file set differs from {folder}/")
        for p, data in res.file_data.items():
            _expect(hashlib.sha256(data).digest() == hashlib.sha256(model[p]).digest(),
                    f"{p} differs from {folder}/{p}")
        with tempfile.TemporaryDirectory() as tmp:
            write_files(res, tmp)
            for p in model:
                _expect(open(os.path.join(tmp, p), "rb").read() == model[p], f"written {p}")

    def signed():
        res = read_artifact(os.path.join(art, "small-signed.tic"), [pub], False, [], [])
        compare("small-signed.tic", res, report(res))
        return "verified, all digests checked, restores small-model/ byte for byte"
    st.check("artifacts/small-signed.tic", signed)

    def packed():
        res = read_artifact(os.path.join(art, "packed-signed.tic"), [pub], False, [], [])
        compare("packed-signed.tic", res, report(res), load_model("packed-model"), "packed-model")
        names = sorted({DTYPES[t.dtype][0] for t in res.header.tensors})
        _expect(names == ["F4", "F6_E2M3", "F6_E3M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"],
                f"dtypes {names}")
        return "packed F4/F6 and FNUZ tensors restore packed-model/ byte for byte"
    st.check("artifacts/packed-signed.tic", packed)

    def enc_sym():
        res = read_artifact(os.path.join(art, "small-encrypted.tic"), [pub], False, [symkey], [])
        compare("small-encrypted.tic", res, report(res))
        return f"unlocked by {res.unlocked_by}"
    st.check("artifacts/small-encrypted.tic (--symkey recipient.symkey)", enc_sym)

    def enc_age():
        res = read_artifact(os.path.join(art, "small-encrypted.tic"), [pub], False, [], age_ids)
        compare("small-encrypted.tic", res, report(res))
        return f"unlocked by {res.unlocked_by}"
    st.check("artifacts/small-encrypted.tic (--identity recipient.agekey)", enc_age)

    def enc_verify_only():
        res = read_artifact(os.path.join(art, "small-encrypted.tic"), [pub], False, [], [], decode=False)
        _expect(len(res.header.chunks) > 0, "chunks")
        return "signature and every chunk digest checked without a key"
    st.check("artifacts/small-encrypted.tic verify without keys", enc_verify_only)

    # --- negative tests on modified copies ---------------------------------
    seed = load_ed25519_seed(os.path.join(art, "signing.key"))
    base = open(os.path.join(art, "small-signed.tic"), "rb").read()
    enc = open(os.path.join(art, "small-encrypted.tic"), "rb").read()

    def parts(blob):
        hl, sl, rl, pl = struct.unpack_from("<4Q", blob, 16)
        h0 = 48
        return (blob[:48], blob[h0:h0 + hl], blob[h0 + hl:h0 + hl + sl],
                blob[h0 + hl + sl:h0 + hl + sl + rl], blob[h0 + hl + sl + rl:])

    def resign(blob, new_header=None, new_recipients=None, new_payload=None):
        pre, hdr, sig, rec, pay = parts(blob)
        hdr = hdr if new_header is None else new_header
        rec = rec if new_recipients is None else new_recipients
        pay = pay if new_payload is None else new_payload
        pre = pre[:16] + struct.pack("<4Q", len(hdr), len(sig), len(rec), len(pay))
        major, minor = struct.unpack_from("<HH", pre, 8)
        msg = SIG_CONTEXT + struct.pack("<HH", major, minor) + hashlib.sha256(hdr).digest()
        sig = sig[:2] + ed25519_public_from_seed(seed) + ed25519_sign(seed, msg) if sig else sig
        return pre + hdr + sig + rec + pay

    tmpdir = tempfile.mkdtemp(prefix="tic_selftest_")

    def attempt(blob, keys=(pub,), allow=False, sym=(), out=None):
        p = os.path.join(tmpdir, "t.tic")
        with open(p, "wb") as fh:
            fh.write(blob)
        res = read_artifact(p, list(keys), allow, list(sym), [])
        if out:
            write_files(res, out)
        return res

    _, hdr, _, _, pay = parts(base)
    neg = [
        ("resigned copy is accepted (sanity)", lambda: (attempt(resign(base)), "accepted")[1], None),
        ("flipped header byte", lambda: attempt(base[:60] + bytes([base[60] ^ 1]) + base[61:]),
         "does not verify"),
        ("untrusted signer", lambda: attempt(base, keys=[bytes(31) + b"\x01"]), "not among"),
        ("signed, no --trust", lambda: attempt(base, keys=[]), "no --trust"),
        ("unsigned without --allow-unsigned",
         lambda: attempt(base[:24] + struct.pack("<Q", 0) + base[32:48 + len(hdr)]
                         + base[48 + len(hdr) + 98:]), "unsigned"),
        ("truncated file", lambda: attempt(base[:-1]), "truncated"),
        ("appended byte", lambda: attempt(base + b"\x00"), "trailing"),
        ("wrong magic", lambda: attempt(b"\x88" + base[1:]), "magic"),
        ("major version 2", lambda: attempt(base[:8] + b"\x02" + base[9:]), "major"),
        ("flipped payload byte",
         lambda: attempt(base[:-5] + bytes([base[-5] ^ 0x40]) + base[-4:]), "SHA-256 mismatch"),
        ("path '../fig.json' (re-signed)",
         lambda: attempt(resign(base, hdr.replace(b"config.json", b"../fig.json", 1))), "'..'"),
        ("tensor digest altered (re-signed)",
         lambda: attempt(resign(base, hdr.replace(
             bytes.fromhex("fa815d7efb2ff1f62fed84c6ed37fdc99400d956ce6bf64ec81b486458b30446"),
             bytes(32), 1))), "tensor 'layer.weight'"),
        ("trailing header byte (re-signed)",
         lambda: attempt(resign(base, hdr + b"\x00")), "left after"),
        ("unknown critical extension (re-signed)",
         lambda: attempt(resign(base, hdr[:-4] + struct.pack("<IHBI", 1, 7, 1, 0))), "critical"),
        ("ignorable extension is skipped (re-signed)",
         lambda: (attempt(resign(base, hdr[:-4] + struct.pack("<IHBI", 1, 7, 0, 3) + b"abc")),
                  "accepted")[1], None),
        ("higher minor version is accepted (re-signed)",
         lambda: (attempt(resign(base[:10] + b"\x05\x00" + base[12:])), "accepted")[1], None),
        ("huge file_count claim (re-signed)",
         lambda: attempt(resign(base, hdr.replace(b"\x02\x00\x00\x00\x0b\x00config",
                                                   b"\xff\xff\x00\x00\x0b\x00config", 1))),
         "cannot fit"),
    ]
    _, ehdr, _, erec, epay = parts(enc)
    kek_other = bytes(32)
    neg += [
        ("encrypted: replaced symmetric entry wrapping another key",
         lambda: attempt(resign(enc, new_recipients=_replace_sym_entry(erec, symkey)), sym=[symkey]),
         "commitment"),
        ("encrypted: wrong symmetric key", lambda: attempt(enc, sym=[kek_other]), "matches"),
        ("encrypted: flipped ciphertext byte with its digest updated (re-signed)",
         lambda: attempt(_flip_encrypted_chunk(enc, resign), sym=[symkey]), "tag"),
    ]
    for name, fn, must in neg:
        if must is None:
            st.check(f"negative: {name}", fn)
        else:
            st.check(f"negative: {name}", lambda fn=fn, must=must: _expect_reject(fn, must))
    import shutil
    shutil.rmtree(tmpdir, ignore_errors=True)


def _replace_sym_entry(rec: bytes, symkey: bytes) -> bytes:
    """Re-wrap a different file key under the same symmetric key."""
    entries = parse_recipients(rec)
    kek, label = symmetric_kek_and_label(symkey)
    out = b"TICR" + struct.pack("<H", len(entries))
    for e in entries:
        body = e.body
        if e.kind == 2:
            body = body[:12] + aead_seal(kek, body[:12], b"tic v1 file key", b"\x42" * 32)
        lb = e.label.encode()
        out += struct.pack("<BH", e.kind, len(lb)) + lb + struct.pack("<I", len(body)) + body
    return out


def _flip_encrypted_chunk(blob: bytes, resign) -> bytes:
    """Flip one ciphertext bit of chunk 0 and fix its digest in the header (and
    re-sign): the digest then matches, so only the Poly1305 tag catches it."""
    hl = struct.unpack_from("<Q", blob, 16)[0]
    pre = parse_preamble(blob[:48], len(blob))
    h = parse_header(blob[48:48 + hl], pre)
    c = h.chunks[0]
    payload_off = len(blob) - pre.payload_len
    pay = bytearray(blob[payload_off:])
    pay[c.offset] ^= 1
    new_digest = hashlib.sha256(bytes(pay[c.offset:c.offset + c.stored_len])).digest()
    hdr = blob[48:48 + hl].replace(c.sha256, new_digest, 1)
    return resign(blob, hdr, None, bytes(pay))


def self_test(vdir: str) -> int:
    st = SelfTest()
    _codec_vectors(st, vdir)
    _lossy_vectors(st, vdir)
    _encryption_vector(st, vdir)
    _ed25519_tests(st, vdir)
    _wycheproof(st, vdir)
    _artifact_tests(st, vdir)
    print(f"{st.passed} passed, {st.failed} failed")
    return 0 if st.failed == 0 else 1


def check_sections(kind: str, path: str) -> int:
    """Differential-testing mode: FILE holds records of a u32 length and that
    many bytes of one section, a header (SPEC §4) or a recipients section
    (ENCRYPTION §5). For each, print `ok` when it parses and meets every MUST
    rule (for a header: of §4, §6 and §7), else `err` and the reason. A
    header's preamble payload_len is taken as its own, and the SHOULD check
    of the st_header JSON (§7) is left out, so the verdict is the section's
    alone."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos < len(data):
        n = struct.unpack_from("<I", data, pos)[0]
        buf = data[pos + 4:pos + 4 + n]
        pos += 4 + n
        try:
            if kind == "header":
                pre = Preamble()
                try:
                    pre.payload_len = struct.unpack_from("<Q", buf, 1 + buf[0])[0]
                except (IndexError, struct.error):
                    pre.payload_len = -1
                parse_header(buf, pre, st_json=False)
            else:
                parse_recipients(buf)
            print("ok")
        except TicError as e:
            print(f"err {e}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Independent reader for tic v1 artifacts.")
    ap.add_argument("artifact", nargs="?", help="the .tic file")
    ap.add_argument("--out", metavar="DIR", help="write the restored files under DIR")
    ap.add_argument("--trust", metavar="PUBKEY_FILE", action="append", default=[],
                    help="pinned Ed25519 public key (PEM, raw 32 bytes, hex or base64); repeatable")
    ap.add_argument("--allow-unsigned", action="store_true",
                    help="read unsigned (or unpinned) artifacts, unverified")
    ap.add_argument("--symkey", metavar="FILE", action="append", default=[],
                    help="symmetric recipient key file; repeatable")
    ap.add_argument("--identity", metavar="AGE_IDENTITY_FILE", action="append", default=[],
                    help="age identity file (AGE-SECRET-KEY-1...); repeatable")
    ap.add_argument("--verify-only", action="store_true",
                    help="check signature, header and chunk digests; no decryption or decoding")
    ap.add_argument("--json", action="store_true", help="print a JSON report")
    ap.add_argument("--self-test", metavar="VECTORS_DIR",
                    help="run every check against format-spec/test-vectors")
    ap.add_argument("--check-headers", metavar="FILE",
                    help="judge each length-prefixed header in FILE: ok or err (testing)")
    ap.add_argument("--check-recipients", metavar="FILE",
                    help="the same for recipients sections (testing)")
    args = ap.parse_args(argv)
    if args.check_headers:
        return check_sections("header", args.check_headers)
    if args.check_recipients:
        return check_sections("recipients", args.check_recipients)
    if args.self_test:
        try:
            return self_test(args.self_test)
        except (OSError, ValueError, KeyError, TicError) as e:
            print(f"self-test could not run: {e}", file=sys.stderr)
            return 2
    if not args.artifact:
        ap.error("ARTIFACT is required (or --self-test VECTORS_DIR)")
    try:
        trusted = [load_ed25519_public(p) for p in args.trust]
        symkeys = [load_symkey(p) for p in args.symkey]
        age_ids = [k for p in args.identity for k in load_age_identities(p)]
        res = read_artifact(args.artifact, trusted, args.allow_unsigned, symkeys, age_ids,
                            decode=not args.verify_only)
        if args.out:
            if args.verify_only:
                raise TicError("--out needs decoding; drop --verify-only")
            write_files(res, args.out)
        rep = report(res)
    except TicError as e:
        if args.json:
            print(json.dumps({"ok": False, "error": str(e)}, indent=2))
        print(f"tic_reader: rejected: {e}", file=sys.stderr)
        return 1
    except (MemoryError, RecursionError, OverflowError, ValueError, OSError) as e:
        if args.json:
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}, indent=2))
        print(f"tic_reader: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        sig = res.signature
        print(f"tic {rep['format_version']} artifact by {rep['creator']!r}")
        print("signature: " + (f"{sig.fingerprint} ({'trusted' if sig.trusted else 'NOT pinned'})"
                               if sig else "none (unsigned)"))
        print(f"encryption: {rep['encryption']}" + (f", unlocked by {res.unlocked_by}"
                                                      if res.unlocked_by else ""))
        for f in rep["files"]:
            print(f"file {f['path']}  {f['size']} bytes  sha256 {f['sha256']}")
        for t in rep["tensors"]:
            print(f"  tensor {t['name'] or '(blob)'}  {t['dtype']}{t['shape']}  {t['codec']}  "
                  f"sha256 {t['sha256']}")
        print("OK: " + ("signature and chunk digests verified" if args.verify_only else
                        "every chunk, tensor and file digest verified")
              + (f"; files written under {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    try:
        rc = main()
        sys.stdout.flush()
    except BrokenPipeError:          # e.g. piped into `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        rc = 1
    except KeyboardInterrupt:
        rc = 130
    sys.exit(rc)
