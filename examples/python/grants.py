#!/usr/bin/python3
"""Grants from Python (docs/grants.md): alice lets bob encrypt with her key under a context constraint.

Usage: /usr/bin/python3 examples/python/grants.py ADDRESS STUBS_DIR CA_CERT ALICE_CERT ALICE_KEY BOB_CERT BOB_KEY BOB
  ADDRESS     host:port of a kms-api that trusts client certificates from CA_CERT (KMS_TLS_CLIENT_CA),
              alice being allowed to create keys (KMS_CREATORS)
  STUBS_DIR   output of generate.sh
  the rest    PEM files: the CA that issued the server's and the callers' certificates, and each caller's
              certificate (its URI SAN is the principal) and private key
  BOB         bob's principal (the URI SAN of BOB_CERT)

Prints one line per step and stops at the first failure (exit status 1).
"""
import sys

address, stubs, ca, alice_cert, alice_key, bob_cert, bob_key, bob_principal = sys.argv[1:9]
sys.path.insert(0, stubs)

import grpc  # noqa: E402  (Debian: python3-grpcio)
from kms.v1 import service_pb2 as s  # noqa: E402
from kms.v1 import service_pb2_grpc  # noqa: E402

DEADLINE = 15


def read(path):
    with open(path, "rb") as f:
        return f.read()


def client(cert, key):
    creds = grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
    return service_pb2_grpc.KeyManagementServiceStub(grpc.secure_channel(address, creds))


def step(name, condition):
    if not condition:
        print(f"FAIL {name}")
        sys.exit(1)
    print(f"ok   {name}")


def refused(call):
    """The status and kms-error-code of a call that must fail."""
    try:
        call()
    except grpc.RpcError as err:
        return err.code(), dict(err.trailing_metadata() or ()).get("kms-error-code")
    return None, None


alice = client(alice_cert, alice_key)
bob = client(bob_cert, bob_key)

key_id = alice.CreateKey(s.CreateKeyRequest(description="python grants"), timeout=DEADLINE).key_metadata.key_id
context = {"app": "billing", "env": "test"}

denied = refused(lambda: bob.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=b"hi", encryption_context=context), timeout=DEADLINE))
step("bob, no grant: Encrypt -> PERMISSION_DENIED", denied == (grpc.StatusCode.PERMISSION_DENIED, "Forbidden.NoPermission"))

grant = alice.CreateGrant(
    s.CreateGrantRequest(
        key_id=key_id,
        grantee_principal=bob_principal,
        operations=["Encrypt", "Decrypt"],
        constraints=s.GrantConstraints(encryption_context_subset={"app": "billing"}),
    ),
    timeout=DEADLINE,
)
step("alice: CreateGrant -> a grant id and a token", grant.grant_id != "" and grant.grant_token.startswith("kmsgt1."))

sealed = bob.Encrypt(
    s.EncryptRequest(key_id=key_id, plaintext=b"hi", encryption_context=context, grant_tokens=[grant.grant_token]), timeout=DEADLINE
)
opened = bob.Decrypt(s.DecryptRequest(ciphertext_blob=sealed.ciphertext_blob, encryption_context=context), timeout=DEADLINE)
step("bob, with the grant: Encrypt and Decrypt under {app: billing, ...}", opened.plaintext == b"hi")

outside = refused(
    lambda: bob.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=b"hi", encryption_context={"app": "payroll"}), timeout=DEADLINE)
)
step("bob, outside the constraint {app: payroll} -> PERMISSION_DENIED", outside == (grpc.StatusCode.PERMISSION_DENIED, "Forbidden.NoPermission"))

dry = refused(
    lambda: bob.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=b"hi", encryption_context=context, dry_run=True), timeout=DEADLINE)
)
step("bob, dry run: FAILED_PRECONDITION DryRunOperation (would succeed)", dry == (grpc.StatusCode.FAILED_PRECONDITION, "DryRunOperation"))

listed = alice.ListGrants(s.ListGrantsRequest(key_id=key_id), timeout=DEADLINE).grants
step("alice: ListGrants shows the grant", [g.grant_id for g in listed] == [grant.grant_id])

alice.RevokeGrant(s.RevokeGrantRequest(key_id=key_id, grant_id=grant.grant_id), timeout=DEADLINE)
after = refused(lambda: bob.Encrypt(s.EncryptRequest(key_id=key_id, plaintext=b"hi", encryption_context=context), timeout=DEADLINE))
step("alice revokes it: bob's Encrypt -> PERMISSION_DENIED at once", after == (grpc.StatusCode.PERMISSION_DENIED, "Forbidden.NoPermission"))

print("7 passed, 0 failed")
