#!/usr/bin/env bash
# The template checks of `make test`: SAM's own validation and lint, cfn-lint on the template as
# CloudFormation receives it (translated by aws-sam-translator, once per Kafka source so that each
# Condition is exercised), and `sam build`.
#
# Environment: SAM (the sam executable, default: sam on PATH), REGION (default us-east-1).
# Needs python with aws-sam-translator and cfn-lint first on PATH (the Makefile puts .venv/bin there),
# and python3.12 on PATH for `sam build`.
set -euo pipefail
cd "$(dirname "$0")/.."

SAM=${SAM:-sam}
REGION=${REGION:-us-east-1}
export SAM_CLI_TELEMETRY=0

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "sam validate (region $REGION)"
"$SAM" validate --region "$REGION"

step "sam validate --lint"
"$SAM" validate --lint --region "$REGION"

# The translated template is what CloudFormation deploys; each Kafka source is translated with the
# parameters it needs, so that cfn-lint sees each Condition with values that make it true.
for source in self-managed msk; do
  step "cfn-lint on the template translated by aws-sam-translator (KafkaSource=$source)"
  out="$workdir/translated-$source.json"
  python -m tests.support.template --region "$REGION" --output "$out" \
    --parameter "KafkaSource=$source" \
    --parameter "MskClusterArn=arn:aws:kafka:$REGION:123456789012:cluster/syncroboard/0a1b2c3d-4e5f-6789-abcd-ef0123456789-1" \
    --parameter "KafkaSaslSecretArn=arn:aws:secretsmanager:$REGION:123456789012:secret:syncroboard-kafka-AbCdEf" \
    --parameter "KafkaSaslKmsKeyArn=arn:aws:kms:$REGION:123456789012:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789" \
    --parameter "SecretsExtensionLayerArn=arn:aws:lambda:$REGION:177933569100:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:17"
  # Informational rules too. I3042 (hardcoded partition) is ignored: its only match is the
  # authorizer URI that the SAM transform itself writes with arn:aws:, which this template
  # cannot change; every ARN the template writes uses ${AWS::Partition}.
  cfn-lint --regions "$REGION" --include-checks I --ignore-checks I3042 -- "$out"
  echo "cfn-lint: no findings"
done

step "sam build"
# python3.12 must be on PATH: the Makefile exports PYENV_VERSION for pyenv's shims.
python3.12 --version
"$SAM" build --region "$REGION"
