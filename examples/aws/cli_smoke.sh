#!/usr/bin/env bash
# A third-party client of kms-api's AWS KMS-compatible API: the aws CLI (Debian's awscli 2.9), unchanged.
#
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=us-east-1 \
#     examples/aws/cli_smoke.sh [ENDPOINT_URL]      (default $KMS_AWS_ENDPOINT, else http://127.0.0.1:7301)
#
# AWS_CLI picks the binary (default /usr/bin/aws, Debian's: a pyenv or pip `aws` earlier on PATH may be
# another major version). Progress goes to stderr; the last line on stdout is one JSON summary. Any
# mismatch prints what differed and exits 1.
set -euo pipefail

endpoint="${1:-${KMS_AWS_ENDPOINT:-http://127.0.0.1:7301}}"
cli="${AWS_CLI:-/usr/bin/aws}"
[[ -x "$cli" ]] || cli="$(command -v aws)"
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID}" "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
# Only the environment's keys and region: no profile, no pager, no instance metadata lookups.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok   $*" >&2; }
fail() {
  echo "FAIL $*" >&2
  printf '{"client":"aws-cli","passed":%d,"failed":1,"failure":"%s"}\n' "$passed" "${*//\"/\'}"
  exit 1
}
kms() { "$cli" --endpoint-url "$endpoint" --output text kms "$@"; }

version="$("$cli" --version 2>&1)"
echo "using $version" >&2

# create-key
created="$(kms create-key --description "aws cli smoke" --query 'KeyMetadata.[KeyId,Arn]')" || fail "create-key failed"
read -r key_id key_arn <<< "$created"
[[ "$key_arn" == "arn:aws:kms:$AWS_DEFAULT_REGION:"*":key/$key_id" ]] || fail "create-key: ARN $key_arn for $key_id"
ok "create-key $key_id"

alias="alias/cli-smoke-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
kms create-alias --alias-name "$alias" --target-key-id "$key_id"
ok "create-alias $alias"

# encrypt a file (fileb://: raw bytes), decrypt it back, compare the bytes
head -c 3000 /dev/urandom > "$work/plain.bin"
kms encrypt --key-id "$alias" --plaintext "fileb://$work/plain.bin" --encryption-context purpose=cli-smoke,tenant=acme \
  --query CiphertextBlob | base64 -d > "$work/blob"
ok "encrypt a 3000-byte file ($(stat -c %s "$work/blob")-byte blob)"
kms decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context purpose=cli-smoke,tenant=acme \
  --query Plaintext | base64 -d > "$work/decrypted.bin"
cmp -s "$work/plain.bin" "$work/decrypted.bin" || fail "decrypt: the bytes differ from the file encrypted"
ok "decrypt gives the same bytes back"

# --plaintext as text: raw-in-base64-out says it is not base64 already (awscli 2's default for blobs)
text_blob="$(kms encrypt --cli-binary-format raw-in-base64-out --key-id "$key_arn" --plaintext "hello from the aws cli" --query CiphertextBlob)"
echo "$text_blob" | base64 -d > "$work/text.blob"
text="$(kms decrypt --ciphertext-blob "fileb://$work/text.blob" --key-id "$key_id" --query Plaintext | base64 -d)"
[[ "$text" == "hello from the aws cli" ]] || fail "raw-in-base64-out round trip gave '$text'"
ok "encrypt --cli-binary-format raw-in-base64-out / decrypt --key-id"

# generate-data-key: the plaintext key and its blob, which decrypts to the same key
dk="$(kms generate-data-key --key-id "$alias" --key-spec AES_256 --query '[CiphertextBlob,Plaintext]')" || fail "generate-data-key failed"
read -r dk_blob dk_plain <<< "$dk"
unset dk
[[ "$(echo "$dk_plain" | base64 -d | wc -c)" == 32 ]] || fail "generate-data-key: not 32 bytes"
echo "$dk_blob" | base64 -d > "$work/dk.blob"
[[ "$(kms decrypt --ciphertext-blob "fileb://$work/dk.blob" --query Plaintext)" == "$dk_plain" ]] || fail "generate-data-key: its blob decrypts to another key"
unset dk_plain
ok "generate-data-key (AES_256) and decrypt of its blob"

# list-keys (the CLI pages through every page itself)
kms list-keys --query 'Keys[].KeyId' | tr '\t' '\n' | grep -qx "$key_id" || fail "list-keys does not list $key_id"
ok "list-keys lists the key"

# describe-key via the alias
[[ "$(kms describe-key --key-id "$alias" --query KeyMetadata.Arn)" == "$key_arn" ]] || fail "describe-key $alias is not $key_arn"
ok "describe-key via alias"

# refused calls: the exit status (254: the service answered an error) and the exception name, one attempt
refused() { # want-name command...
  local want="$1" status=0
  shift
  AWS_MAX_ATTEMPTS=1 kms "$@" > "$work/out" 2> "$work/err" || status=$?
  [[ "$status" == 254 ]] || fail "$1: exit status $status, want 254 ($(cat "$work/err"))"
  grep -q "($want)" "$work/err" || fail "$1: want $want, got: $(cat "$work/err")"
  ok "$1 refused: $want, exit status $status"
}
last="$(tail -c 1 "$work/blob" | od -An -tu1 | tr -d ' ')"
printf "\\x$(printf %02x $((last ^ 1)))" | dd of="$work/blob" bs=1 seek=$(($(stat -c %s "$work/blob") - 1)) conv=notrunc status=none
refused InvalidCiphertextException decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context purpose=cli-smoke,tenant=acme
refused NotFoundException describe-key --key-id "alias/cli-smoke-missing-$$"

kms delete-alias --alias-name "$alias"
ok "delete-alias"

printf '{"client":"aws-cli","version":"%s","key":"%s","alias":"%s","passed":%d,"failed":0,"refused":["InvalidCiphertextException","NotFoundException"],"exit_status":254}\n' \
  "${version%% *}" "$key_arn" "$alias" "$passed"
