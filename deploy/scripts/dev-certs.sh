#!/usr/bin/env bash
# Dev clusters only: a throw-away CA, a server certificate for kms-api and one client certificate, and the
# Secret kms-api-tls in the kms-dev namespace. Production certificates come from your PKI or cert-manager.
#   deploy/scripts/dev-certs.sh [OUT_DIR]    (default ./.kms-dev-certs)
set -euo pipefail
out=${1:-.kms-dev-certs}
ns=${KMS_NAMESPACE:-kms-dev}
mkdir -p "$out" && cd "$out"
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=kms dev CA" -keyout ca.key -out ca.crt
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kms-api" -keyout tls.key -out tls.csr
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out tls.crt \
  -extfile <(printf "subjectAltName=DNS:kms-api,DNS:kms-api.%s.svc,DNS:kms-api.%s.svc.cluster.local,DNS:localhost" "$ns" "$ns")
# No URI SAN: kms-api names this client "cn:dev-client" (a CN never passes for a SPIFFE id).
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=dev-client" -keyout client.key -out client.csr
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out client.crt \
  -extfile <(printf "extendedKeyUsage=clientAuth")
rm -f ./*.csr

kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" create secret generic kms-api-tls --from-file=tls.crt --from-file=tls.key --from-file=ca.crt \
  --dry-run=client -o yaml | kubectl apply -f -
echo "client certificate: $PWD/client.crt, key: $PWD/client.key, CA: $PWD/ca.crt"
