#!/usr/bin/env python3
"""CRC32C end-to-end integrity from Python: the client computes CRC32C with its own code (pure Python,
below; google-crc32c gives the same values faster) and sends it in the *_crc32c fields.

Usage: crc32c_check.py ADDRESS STUBS_DIR   (stubs from examples/python/generate.sh)
Prints one line per check and a final "N passed, M failed".
"""
import sys

sys.path.insert(0, sys.argv[2])

import grpc  # noqa: E402  (Debian: python3-grpcio, visible to /usr/bin/python3)
from kms.v1 import resources_pb2 as r  # noqa: E402
from kms.v1 import service_pb2 as s  # noqa: E402
from kms.v1 import service_pb2_grpc  # noqa: E402


def _table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli, reflected
        table.append(c)
    return table


TABLE = _table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


DEADLINE = 20
kms = service_pb2_grpc.KeyManagementServiceStub(grpc.insecure_channel(sys.argv[1]))
passed = failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001  (report and go on)
        failed += 1
        print(f"FAIL {name}: {e!r}")


def require(condition, message):
    if not condition:
        raise AssertionError(message)


def rfc3720():
    require(crc32c(bytes(32)) == 0x8A9136AA, "32 zeros")
    require(crc32c(b"\xff" * 32) == 0x62A8AB43, "32 0xff")
    require(crc32c(bytes(range(32))) == 0x46DD794E, "0..31")


key_id = kms.CreateKey(s.CreateKeyRequest(key_spec=r.KEY_SPEC_AES_256, key_usage=r.KEY_USAGE_ENCRYPT_DECRYPT), timeout=DEADLINE).key_metadata.key_id
plaintext = b"integrity from python"


def round_trip():
    enc = kms.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=plaintext, plaintext_crc32c=crc32c(plaintext)), timeout=DEADLINE)
    require(enc.verified_plaintext_crc32c, "verified_plaintext_crc32c")
    require(enc.HasField("ciphertext_blob_crc32c") and enc.ciphertext_blob_crc32c == crc32c(enc.ciphertext_blob), "ciphertext_blob_crc32c")
    blob = enc.ciphertext_blob
    dec = kms.Decrypt(s.DecryptRequest(ciphertext_blob=blob, ciphertext_blob_crc32c=crc32c(blob)), timeout=DEADLINE)
    require(dec.verified_ciphertext_blob_crc32c, "verified_ciphertext_blob_crc32c")
    require(dec.plaintext == plaintext and dec.plaintext_crc32c == crc32c(dec.plaintext), "plaintext_crc32c")


def not_sent():
    enc = kms.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=plaintext), timeout=DEADLINE)
    require(not enc.verified_plaintext_crc32c, "verified without a CRC32C")
    require(enc.ciphertext_blob_crc32c == crc32c(enc.ciphertext_blob), "ciphertext_blob_crc32c")


def wrong():
    try:
        kms.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=plaintext, plaintext_crc32c=crc32c(plaintext) ^ 1), timeout=DEADLINE)
    except grpc.RpcError as e:
        code = dict(e.trailing_metadata() or ()).get("kms-error-code")
        require(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"status {e.code()}")
        require(code == "Rejected.ChecksumMismatch", f"kms-error-code {code}")
        require(e.details().startswith("plaintext_crc32c:"), f"details {e.details()!r}")
        return
    raise AssertionError("a wrong CRC32C was accepted")


def random_bytes():
    res = kms.GenerateRandom(s.GenerateRandomRequest(number_of_bytes=64), timeout=DEADLINE)
    require(len(res.random) == 64 and res.random_crc32c == crc32c(res.random), "random_crc32c")


check("RFC 3720 vectors", rfc3720)
check("encrypt and decrypt with CRC32C", round_trip)
check("no CRC32C sent: not verified, response CRC32C still there", not_sent)
check("wrong CRC32C refused", wrong)
check("random bytes carry their CRC32C", random_bytes)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
