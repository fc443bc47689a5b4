#!/usr/bin/python3
"""The image test's own calls against the containers (deploy/scripts/image-test.sh).

  client.py health ADDRESS [SERVICE]          wait (up to 60 s) until grpc.health.v1 answers SERVING
  client.py encrypt ADDRESS STUBS STATE       create an HSM key, encrypt; keep key id + ciphertext in STATE
  client.py decrypt ADDRESS STUBS STATE       decrypt STATE's ciphertext; it must give the plaintext back
"""
import json
import os
import sys
import time

import grpc  # Debian: python3-grpcio (visible to /usr/bin/python3)

DEADLINE = 15
CONTEXT = {"purpose": "image-test"}
# Not a secret: a fixed test message, so the decrypt after the restart can compare against it.
PLAINTEXT = b"image test: survives a restart of kms-api and hsm-worker"


def health(address, service=""):
    """Raw grpc.health.v1.Health/Check (no stubs needed): SERVING is the response bytes 08 01."""
    name = service.encode()
    request = (b"\x0a" + bytes([len(name)]) + name) if name else b""
    check = grpc.insecure_channel(address).unary_unary(
        "/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None
    )
    last = "no answer"
    until = time.monotonic() + 60
    while time.monotonic() < until:
        try:
            if check(request, timeout=2) == b"\x08\x01":
                print(f"health {address} {service or '(overall)'}: SERVING")
                return
            last = "not SERVING"
        except grpc.RpcError as err:
            last = f"{err.code().name}: {err.details()}"
        time.sleep(0.5)
    sys.exit(f"health {address} {service}: {last} after 60 s")


def stub(address, stubs):
    """The service's stub; puts the generated modules (examples/python/generate.sh) on the path first."""
    sys.path.insert(0, os.path.abspath(stubs))
    from kms.v1 import service_pb2_grpc

    return service_pb2_grpc.KeyManagementServiceStub(grpc.insecure_channel(address))


def encrypt(address, stubs, state):
    kms = stub(address, stubs)
    from kms.v1 import resources_pb2 as r
    from kms.v1 import service_pb2 as s

    created = kms.CreateKey(
        s.CreateKeyRequest(
            description="image test restart",
            key_spec=r.KEY_SPEC_AES_256,
            key_usage=r.KEY_USAGE_ENCRYPT_DECRYPT,
            protection_level=r.PROTECTION_LEVEL_HSM,
        ),
        timeout=DEADLINE,
    )
    key_id = created.key_metadata.key_id
    enc = kms.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=PLAINTEXT, encryption_context=CONTEXT), timeout=DEADLINE)
    with open(state, "w") as f:
        json.dump({"keyId": key_id, "ciphertext": enc.ciphertext_blob.hex()}, f)
    print(f"encrypted under HSM key {key_id}")


def decrypt(address, stubs, state):
    kms = stub(address, stubs)
    from kms.v1 import service_pb2 as s

    with open(state) as f:
        saved = json.load(f)
    dec = kms.Decrypt(
        s.DecryptRequest(ciphertext_blob=bytes.fromhex(saved["ciphertext"]), encryption_context=CONTEXT), timeout=DEADLINE
    )
    if dec.plaintext != PLAINTEXT or dec.key_id != saved["keyId"]:
        sys.exit(f"decrypt after the restart: wrong plaintext or key id {dec.key_id}")
    print(f"decrypted after the restart under key {dec.key_id}")


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or [""]
    commands = {"health": health, "encrypt": encrypt, "decrypt": decrypt}
    if command not in commands:
        sys.exit(__doc__)
    commands[command](*rest)
