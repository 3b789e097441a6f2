#!/usr/bin/env bash
# Make a local development Ed25519 key pair for access tokens and write it to
# .env (git-ignored), where `spin up` picks it up as the jwt_private_key and
# jwt_public_key variables. Does nothing if .env already has a private key.
# Never use these keys in production: supply real ones through your secret
# store (Vault, Azure Key Vault, Kubernetes secrets).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f .env ] && grep -q '^SPIN_VARIABLE_JWT_PRIVATE_KEY=' .env; then
  exit 0
fi
command -v openssl >/dev/null || { echo "dev-keys: openssl is needed to make a key pair" >&2; exit 1; }

pem=$(openssl genpkey -algorithm ed25519)
private=$(printf '%s\n' "$pem" | openssl pkey -outform DER | base64 | tr -d '\n')
public=$(printf '%s\n' "$pem" | openssl pkey -pubout -outform DER | base64 | tr -d '\n')
umask 077
{
  echo "# Local development keys made by scripts/dev-keys.sh. Not for production."
  echo "SPIN_VARIABLE_JWT_PRIVATE_KEY=$private"
  echo "SPIN_VARIABLE_JWT_PUBLIC_KEY=$public"
} >> .env
echo "dev-keys: wrote a development key pair to .env" >&2
