#!/usr/bin/python3
"""A third-party client of kms-api's AWS KMS-compatible API: boto3, the AWS SDK for Python, unchanged.

  /usr/bin/python3 examples/aws/boto3_smoke.py [--endpoint URL] [--region R] [--principal P]
  /usr/bin/python3 examples/aws/boto3_smoke.py --refused-on KEY_ARN [--refused-alias ALIAS] ...

The endpoint, region and keys come from the arguments or from AWS_ENDPOINT_URL, AWS_DEFAULT_REGION,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Progress goes to stderr, one line per check; the last line
on stdout is one JSON summary. Any mismatch prints what differed and exits 1.

The full run creates its own keys and exercises them (the caller must administer them: the dev stack's
"dev"). --refused-on is the hostile run: a caller that may not use KEY_ARN checks that every call on it
is refused, with the same answer as for a key that does not exist.
"""
import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import uuid

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

try:  # Debian's python3-cryptography; without it the signature is checked with openssl.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from cryptography.exceptions import InvalidSignature
except ImportError:
    serialization = None

CHECKS = []  # (name, result) in order


class Mismatch(Exception):
    pass


def check(name, ok, detail=""):
    if not ok:
        raise Mismatch(f"{name}: {detail}" if detail else name)
    CHECKS.append(name)
    print(f"ok   {name}", file=sys.stderr)


def equal(name, got, want):
    check(name, got == want, f"got {got!r}, want {want!r}")


def error_of(call, *args, **kwargs):
    """The ClientError a call fails with: its code, message and how many times botocore retried it."""
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return {
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message", ""),
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "retries": e.response["ResponseMetadata"].get("RetryAttempts", 0),
        }
    raise Mismatch(f"{getattr(call, '__name__', call)} succeeded; expected it to fail")


def refused(name, want, call, *args, **kwargs):
    """Checks a call fails with AWS exception `want`, on the first attempt (nothing retried it away)."""
    err = error_of(call, *args, **kwargs)
    check(name, err["code"] == want and err["retries"] == 0, f"got {err}, want {want} without retries")
    return err


def clients(args):
    session = boto3.session.Session(
        aws_access_key_id=args.access_key_id, aws_secret_access_key=args.secret_access_key, region_name=args.region
    )
    make = lambda config: session.client("kms", endpoint_url=args.endpoint, config=config)  # noqa: E731
    # Negative cases run with one attempt in all: a retried call could hide what the first one answered.
    once = make(Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    return make(Config(retries={"max_attempts": 2, "mode": "standard"})), once


def verify_locally(public_der, message, signature, prehashed):
    """An ECDSA P-256 SHA-256 signature checked outside the service, with cryptography or openssl."""
    if serialization is not None:
        key = serialization.load_der_public_key(public_der)
        algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256())) if prehashed else ec.ECDSA(hashes.SHA256())
        try:
            key.verify(signature, message, algorithm)
            return True
        except InvalidSignature:
            return False
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for name, data in (("pub.der", public_der), ("data", message), ("sig", signature)):
            paths[name] = os.path.join(d, name)
            with open(paths[name], "wb") as f:
                f.write(data)
        if prehashed:  # the data is the SHA-256 digest itself
            cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", paths["pub.der"],
                   "-sigfile", paths["sig"], "-in", paths["data"], "-pkeyopt", "digest:sha256"]
        else:
            cmd = ["openssl", "dgst", "-sha256", "-verify", paths["pub.der"], "-keyform", "DER", "-signature", paths["sig"], paths["data"]]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def full_run(args, kms, once):
    ops = {}
    errors = {}
    suffix = uuid.uuid4().hex[:8]

    # CreateKey: the three kinds.
    sym = kms.create_key(Description="boto3 smoke", KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT",
                         Tags=[{"TagKey": "suite", "TagValue": "boto3"}])["KeyMetadata"]
    equal("CreateKey SYMMETRIC_DEFAULT spec", (sym["KeySpec"], sym["KeyUsage"], sym["KeyState"], sym["Enabled"]),
          ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled", True))
    check("CreateKey answers an ARN", sym["Arn"] == f"arn:aws:kms:{args.region}:{sym['AWSAccountId']}:key/{sym['KeyId']}", sym["Arn"])
    ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    equal("CreateKey ECC_NIST_P256", (ecc["KeySpec"], ecc["KeyUsage"], ecc.get("SigningAlgorithms")), ("ECC_NIST_P256", "SIGN_VERIFY", ["ECDSA_SHA_256"]))
    hmac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    equal("CreateKey HMAC_256", (hmac["KeySpec"], hmac["KeyUsage"], hmac.get("MacAlgorithms")), ("HMAC_256", "GENERATE_VERIFY_MAC", ["HMAC_SHA_256"]))
    ops["CreateKey"] = [sym["KeySpec"], ecc["KeySpec"], hmac["KeySpec"]]
    key_id, key_arn = sym["KeyId"], sym["Arn"]

    # Aliases, then DescribeKey by each name the SDKs send.
    alias = f"alias/boto3-smoke-{suffix}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    listed = [a for a in kms.list_aliases(KeyId=key_id)["Aliases"]]
    equal("ListAliases(KeyId) has the alias", [(a["AliasName"], a["TargetKeyId"]) for a in listed], [(alias, key_id)])
    check("ListAliases answers alias ARNs", listed[0]["AliasArn"] == key_arn.split(":key/")[0] + ":" + alias, listed[0]["AliasArn"])
    every = [a["AliasName"] for a in kms.get_paginator("list_aliases").paginate().build_full_result()["Aliases"]]
    check("ListAliases (paginated) has the alias", alias in every, every)
    ops["CreateAlias"] = ops["ListAliases"] = "ok"
    alias_arn = listed[0]["AliasArn"]
    for how, ref in (("id", key_id), ("ARN", key_arn), ("alias", alias), ("alias ARN", alias_arn)):
        equal(f"DescribeKey by {how}", kms.describe_key(KeyId=ref)["KeyMetadata"]["Arn"], key_arn)
    ops["DescribeKey"] = ["id", "arn", "alias", "alias-arn"]
    every_key = [k["KeyId"] for k in kms.get_paginator("list_keys").paginate().build_full_result()["Keys"]]
    check("ListKeys (paginated) has the three keys", {key_id, ecc["KeyId"], hmac["KeyId"]} <= set(every_key))
    ops["ListKeys"] = "ok"

    # Encrypt / Decrypt with a context; Decrypt without KeyId; tampering and wrong context.
    context = {"tenant": "acme", "purpose": "boto3-smoke"}
    plaintext = os.urandom(100)
    enc = kms.encrypt(KeyId=alias, Plaintext=plaintext, EncryptionContext=context)
    equal("Encrypt names the key's ARN", (enc["KeyId"], enc["EncryptionAlgorithm"]), (key_arn, "SYMMETRIC_DEFAULT"))
    blob = enc["CiphertextBlob"]
    dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    check("Decrypt without KeyId round-trips", dec["Plaintext"] == plaintext and dec["KeyId"] == key_arn)
    dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=key_arn)
    check("Decrypt with KeyId round-trips", dec["Plaintext"] == plaintext)
    ops["Encrypt"] = ops["Decrypt"] = "ok"
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    errors["tampered"] = refused("Decrypt of a tampered blob", "InvalidCiphertextException", once.decrypt,
                                 CiphertextBlob=bytes(tampered), EncryptionContext=context)["code"]
    errors["wrong_context"] = refused("Decrypt with another context", "InvalidCiphertextException", once.decrypt,
                                      CiphertextBlob=blob, EncryptionContext={"tenant": "other"})["code"]

    # GenerateDataKey, and its CiphertextBlob decrypts to the same data key.
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    check("GenerateDataKey: 32 bytes", len(dk["Plaintext"]) == 32 and dk["KeyId"] == key_arn)
    check("GenerateDataKey's blob decrypts to its key", kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=context)["Plaintext"] == dk["Plaintext"])
    wp = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    check("GenerateDataKeyWithoutPlaintext: 16 bytes", len(kms.decrypt(CiphertextBlob=wp["CiphertextBlob"])["Plaintext"]) == 16)
    check("GenerateRandom", len(kms.generate_random(NumberOfBytes=24)["Plaintext"]) == 24)
    ops["GenerateDataKey"] = ops["GenerateDataKeyWithoutPlaintext"] = ops["GenerateRandom"] = "ok"

    # ReEncrypt onto a second key; the old key is then the wrong one for Decrypt.
    other = kms.create_key(Description="boto3 smoke re-encrypt target")["KeyMetadata"]
    re = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=context, DestinationKeyId=other["KeyId"],
                        DestinationEncryptionContext={"moved": "yes"})
    equal("ReEncrypt names both keys", (re["SourceKeyId"], re["KeyId"]), (key_arn, other["Arn"]))
    check("ReEncrypt's blob decrypts under the new key", kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext={"moved": "yes"})["Plaintext"] == plaintext)
    errors["incorrect_key"] = refused("Decrypt naming another key", "IncorrectKeyException", once.decrypt,
                                      CiphertextBlob=re["CiphertextBlob"], EncryptionContext={"moved": "yes"}, KeyId=key_id)["code"]
    ops["ReEncrypt"] = "ok"

    # Sign / Verify (RAW and DIGEST), GetPublicKey, and the signatures checked locally.
    message = b"signed by kms-api, checked by " + (b"cryptography" if serialization else b"openssl")
    digest = hashlib.sha256(message).digest()
    pub = kms.get_public_key(KeyId=ecc["KeyId"])
    equal("GetPublicKey", (pub["KeySpec"], pub["KeyUsage"], pub["SigningAlgorithms"]), ("ECC_NIST_P256", "SIGN_VERIFY", ["ECDSA_SHA_256"]))
    ops["GetPublicKey"] = "ok"
    for kind, data, prehashed in (("RAW", message, False), ("DIGEST", digest, True)):
        sig = kms.sign(KeyId=ecc["KeyId"], Message=data, MessageType=kind, SigningAlgorithm="ECDSA_SHA_256")
        equal(f"Sign {kind}", (sig["KeyId"], sig["SigningAlgorithm"]), (ecc["Arn"], "ECDSA_SHA_256"))
        got = kms.verify(KeyId=ecc["KeyId"], Message=data, MessageType=kind, Signature=sig["Signature"], SigningAlgorithm="ECDSA_SHA_256")
        check(f"Verify {kind}", got["SignatureValid"] is True)
        check(f"{kind} signature verifies locally", verify_locally(pub["PublicKey"], data, sig["Signature"], prehashed))
        if kind == "RAW":
            raw_signature = sig["Signature"]
    errors["bad_signature"] = refused("Verify of another message", "KMSInvalidSignatureException", once.verify, KeyId=ecc["KeyId"],
                                      Message=message + b"!", Signature=raw_signature, SigningAlgorithm="ECDSA_SHA_256")["code"]
    errors["sign_with_encrypt_key"] = refused("Sign with an ENCRYPT_DECRYPT key", "InvalidKeyUsageException", once.sign,
                                              KeyId=key_id, Message=message, SigningAlgorithm="ECDSA_SHA_256")["code"]
    ops["Sign"] = ops["Verify"] = ["RAW", "DIGEST"]
    ops["local_verify"] = "cryptography" if serialization else "openssl"

    # GenerateMac / VerifyMac.
    mac = kms.generate_mac(KeyId=hmac["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_256")
    check("GenerateMac: 32 bytes", len(mac["Mac"]) == 32 and mac["KeyId"] == hmac["Arn"])
    check("VerifyMac", kms.verify_mac(KeyId=hmac["KeyId"], Message=message, Mac=mac["Mac"], MacAlgorithm="HMAC_SHA_256")["MacValid"] is True)
    errors["bad_mac"] = refused("VerifyMac of another message", "KMSInvalidMacException", once.verify_mac, KeyId=hmac["KeyId"],
                                Message=message + b"!", Mac=mac["Mac"], MacAlgorithm="HMAC_SHA_256")["code"]
    ops["GenerateMac"] = ops["VerifyMac"] = "ok"

    # Tags.
    kms.tag_resource(KeyId=key_arn, Tags=[{"TagKey": "team", "TagValue": "payments"}])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
    equal("TagResource / ListResourceTags", tags, {"suite": "boto3", "team": "payments"})
    kms.untag_resource(KeyId=key_id, TagKeys=["team"])
    equal("UntagResource", [t["TagKey"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]], ["suite"])
    ops["TagResource"] = ops["ListResourceTags"] = ops["UntagResource"] = "ok"

    # Key policy: put one, read it back (this service's policy language, Version "1").
    policy = json.dumps({"Version": "1", "Statement": [
        {"Sid": "owner", "Effect": "Allow", "Principal": [args.principal], "Action": "kms:*", "Resource": "*"}]})
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    got = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    equal("PutKeyPolicy / GetKeyPolicy", json.loads(got), json.loads(policy))
    equal("ListKeyPolicies", kms.list_key_policies(KeyId=key_id)["PolicyNames"], ["default"])
    errors["malformed_policy"] = refused("PutKeyPolicy of a bad document", "MalformedPolicyDocumentException", once.put_key_policy,
                                         KeyId=key_id, PolicyName="default", Policy='{"Version": "1", "Statement": [{"Effect": "Maybe"}]}')["code"]
    ops["PutKeyPolicy"] = ops["GetKeyPolicy"] = "ok"

    # Rotation.
    equal("GetKeyRotationStatus before", kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], False)
    kms.enable_key_rotation(KeyId=key_id)
    equal("EnableKeyRotation", kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], True)
    kms.disable_key_rotation(KeyId=key_id)
    equal("DisableKeyRotation", kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], False)
    # RotateKeyOnDemand (2024) is newer than Debian 12's botocore model: run it where the model has it.
    if "RotateKeyOnDemand" in kms.meta.service_model.operation_names:
        kms.rotate_key_on_demand(KeyId=key_id)
        check("Decrypt of an old blob after RotateKeyOnDemand", kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == plaintext)
        ops["RotateKeyOnDemand"] = "ok"
    ops["EnableKeyRotation"] = ops["GetKeyRotationStatus"] = ops["DisableKeyRotation"] = "ok"

    # Disable → DisabledException; enable again.
    kms.disable_key(KeyId=key_id)
    equal("DisableKey", kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"], "Disabled")
    errors["disabled"] = refused("Encrypt under a disabled key", "DisabledException", once.encrypt, KeyId=key_id, Plaintext=b"x")["code"]
    kms.enable_key(KeyId=key_id)
    check("EnableKey", kms.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"] == key_arn)
    ops["DisableKey"] = ops["EnableKey"] = "ok"

    # Deletion: schedule, the key refuses use, cancel (it comes back Disabled, as in AWS).
    sched = kms.schedule_key_deletion(KeyId=other["KeyId"], PendingWindowInDays=7)
    equal("ScheduleKeyDeletion", (sched["KeyId"], sched["KeyState"], sched["PendingWindowInDays"]), (other["Arn"], "PendingDeletion", 7))
    check("ScheduleKeyDeletion has a DeletionDate", "DeletionDate" in sched)
    errors["pending_deletion"] = refused("Encrypt under a key pending deletion", "KMSInvalidStateException", once.encrypt,
                                         KeyId=other["KeyId"], Plaintext=b"x")["code"]
    equal("CancelKeyDeletion", kms.cancel_key_deletion(KeyId=other["KeyId"])["KeyId"], other["Arn"])
    equal("a cancelled key is Disabled", kms.describe_key(KeyId=other["KeyId"])["KeyMetadata"]["KeyState"], "Disabled")
    ops["ScheduleKeyDeletion"] = ops["CancelKeyDeletion"] = "ok"

    # Names that do not exist, other refusals, and the SigV4 signature.
    missing = str(uuid.uuid4())
    errors["missing_key"] = refused("DescribeKey of a missing key", "NotFoundException", once.describe_key, KeyId=missing)["code"]
    errors["missing_key_arn"] = refused("Encrypt under a missing key ARN", "NotFoundException", once.encrypt,
                                        KeyId=key_arn.replace(key_id, missing), Plaintext=b"x")["code"]
    errors["missing_alias"] = refused("DescribeKey of a missing alias", "NotFoundException", once.describe_key, KeyId=f"alias/missing-{suffix}")["code"]
    errors["alias_exists"] = refused("CreateAlias of a taken name", "AlreadyExistsException", once.create_alias, AliasName=alias, TargetKeyId=other["KeyId"])["code"]
    errors["unsupported_spec"] = refused("CreateKey SM2", "UnsupportedOperationException", once.create_key, KeySpec="SM2", KeyUsage="SIGN_VERIFY")["code"]
    errors["unsupported_operation"] = refused("ReplicateKey", "UnsupportedOperationException", once.replicate_key,
                                              KeyId=key_id, ReplicaRegion="eu-west-1")["code"]
    bad = argparse.Namespace(**{**vars(args), "secret_access_key": args.secret_access_key[:-1] + ("A" if args.secret_access_key[-1] != "A" else "B")})
    _, bad_once = clients(bad)
    errors["wrong_secret"] = refused("a request signed with a wrong secret", "InvalidSignatureException", bad_once.list_keys)["code"]

    kms.delete_alias(AliasName=alias)
    check("DeleteAlias", all(a["AliasName"] != alias for a in kms.list_aliases(KeyId=key_id)["Aliases"]))
    ops["DeleteAlias"] = "ok"
    return {"keys": {"symmetric": key_arn, "ecc": ecc["Arn"], "hmac": hmac["Arn"], "reencrypt_target": other["Arn"]},
            "operations": ops, "errors": errors}


def hostile_run(args, once):
    """A caller that may not use args.refused_on: every call is refused, as for a key that does not exist."""
    target = args.refused_on
    missing = target.rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    calls = {
        "DescribeKey": lambda k: once.describe_key(KeyId=k),
        "Encrypt": lambda k: once.encrypt(KeyId=k, Plaintext=b"x"),
        "GenerateDataKey": lambda k: once.generate_data_key(KeyId=k, NumberOfBytes=32),
        "GetKeyPolicy": lambda k: once.get_key_policy(KeyId=k, PolicyName="default"),
        "ListResourceTags": lambda k: once.list_resource_tags(KeyId=k),
        "GetKeyRotationStatus": lambda k: once.get_key_rotation_status(KeyId=k),
        "DisableKey": lambda k: once.disable_key(KeyId=k),
        "ScheduleKeyDeletion": lambda k: once.schedule_key_deletion(KeyId=k, PendingWindowInDays=7),
        "PutKeyPolicy": lambda k: once.put_key_policy(KeyId=k, PolicyName="default", Policy='{"Version": "1", "Statement": []}'),
    }
    answers = {}
    for op, call in calls.items():
        on_key = refused(f"{op} on the other principal's key", "AccessDeniedException", call, target)
        on_missing = refused(f"{op} on a missing key", "AccessDeniedException", call, missing)
        # The same words but for the key id: the refusal tells nothing about the key.
        equal(f"{op}: the same message for both", on_key["message"].replace(target, "K").replace(target.rsplit("/", 1)[1], "K"),
              on_missing["message"].replace(missing, "K").replace(missing.rsplit("/", 1)[1], "K"))
        answers[op] = on_key["code"]
    if args.refused_blob:
        blob = base64.b64decode(args.refused_blob)
        answers["Decrypt"] = refused("Decrypt of the other principal's blob", "AccessDeniedException", once.decrypt, CiphertextBlob=blob)["code"]
    if args.refused_alias:
        on_alias = refused("DescribeKey through the other principal's alias", "AccessDeniedException", once.describe_key, KeyId=args.refused_alias)
        check("the alias refusal does not name the key", target.rsplit("/", 1)[1] not in on_alias["message"], on_alias["message"])
        missing_alias = f"alias/missing-{uuid.uuid4().hex[:8]}"
        on_missing = refused("DescribeKey through a missing alias", "AccessDeniedException", once.describe_key, KeyId=missing_alias)
        equal("the same message for an alias and a missing one", on_alias["message"].replace(args.refused_alias, "A"),
              on_missing["message"].replace(missing_alias, "A"))
        answers["DescribeKey(alias)"] = on_alias["code"]
    listed = [k["KeyArn"] for k in once.get_paginator("list_keys").paginate().build_full_result()["Keys"]]
    check("ListKeys does not list the other principal's key", target not in listed, listed)
    aliases = [a.get("TargetKeyId") for a in once.list_aliases()["Aliases"]]
    check("ListAliases does not show the other principal's key", target.rsplit("/", 1)[1] not in aliases, aliases)
    return {"refused": answers}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:7301"))
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    p.add_argument("--access-key-id", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    p.add_argument("--secret-access-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    p.add_argument("--principal", default=os.environ.get("KMS_AWS_PRINCIPAL", "dev"), help="who the keys authenticate as (for the key policy)")
    p.add_argument("--refused-on", metavar="KEY_ARN", help="the hostile run: a key this caller may not use")
    p.add_argument("--refused-alias", metavar="ALIAS", help="with --refused-on: an alias of that key")
    p.add_argument("--refused-blob", metavar="BASE64", help="with --refused-on: a ciphertext made under that key")
    args = p.parse_args()
    if not args.access_key_id or not args.secret_access_key:
        p.error("no access key: pass --access-key-id/--secret-access-key or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    kms, once = clients(args)
    summary = {"client": "boto3", "boto3": boto3.__version__, "botocore": botocore.__version__}
    try:
        summary.update(hostile_run(args, once) if args.refused_on else full_run(args, kms, once))
    except Exception as e:  # noqa: BLE001 -- any failure is a failed run, reported in the summary
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr)
        print(json.dumps({**summary, "passed": len(CHECKS), "failed": 1, "failure": str(e)}))
        return 1
    print(json.dumps({**summary, "passed": len(CHECKS), "failed": 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
