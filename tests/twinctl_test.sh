#!/usr/bin/env bash
# twinctl and the demo client against a real twinserve: every command, its
# output, and non-zero exit codes with clear messages on failure.
set -uo pipefail
cd "${TEST_SRCDIR}/twinserve"
source tests/shell_test_lib.sh
T=client/twinctl

out=$($T health 2>&1); check "health" grep -q "health: SERVING" <<<"$out"

out=$($T register fashion tests/fixtures/fashion_cnn.pt \
  --input image:FP32:-1,1,28,28 --output logits:FP32:-1,10 \
  --description "demo model" 2>&1)
check "register prints the model" grep -q "fp32 *READY" <<<"$out"

out=$($T register fashion tests/fixtures/fashion_cnn.pt \
  --input image:FP32:-1,1,28,28 --output logits:FP32:-1,10 2>&1); rc=$?
check "register twice exits 1" test $rc -eq 1
check "register twice says ALREADY_EXISTS" grep -q "ALREADY_EXISTS" <<<"$out"

out=$($T register bad tests/fixtures/fashion_cnn.pt --input image:FLOAT:1 \
  --output x:FP32:1 2>&1); rc=$?
check "bad spec is a usage error (2)" test $rc -eq 2

out=$($T list 2>&1); check "list" grep -q "^fashion *READY" <<<"$out"
out=$($T show fashion 2>&1); check "show" grep -q "description: demo model" <<<"$out"
out=$($T show ghost 2>&1); rc=$?
check "show unknown exits 1 with NOT_FOUND" test $rc -eq 1
check "show unknown names the model" grep -q "NOT_FOUND: model 'ghost'" <<<"$out"

/usr/bin/python3 - "$TMP" <<'PY'
import sys, gzip, numpy as np
d = sys.argv[1]
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
x = np.frombuffer(raw, np.uint8, offset=16)[: 4 * 784].reshape(4, 1, 28, 28)
np.save(d + "/images.npy", (x / 255.0).astype(np.float32))
PY
mkdir -p "$TMP/out"
out=$($T infer fashion --input "$TMP/images.npy" --top-k 3 \
  --labels tests/fixtures/fashion_mnist_labels.txt --output-dir "$TMP/out" 2>&1)
check "infer served by fp32" grep -q "version fp32" <<<"$out"
check "infer prints top-3 with names" grep -q "logits\[0\] top-3:  Ankle boot" <<<"$out"
check "infer wrote logits.npy" /usr/bin/python3 -c "
import numpy as np; y = np.load('$TMP/out/logits.npy'); assert y.shape == (4, 10), y.shape"

out=$($T infer fashion --input "$TMP/missing.npy" 2>&1); rc=$?
check "infer with a missing file exits 2" test $rc -eq 2

out=$(client/demo --server="$TWINSERVE_SERVER" --requests=500 \
  --model_file=tests/fixtures/fashion_cnn.pt \
  --labels_file=tests/fixtures/fashion_mnist_labels.txt 2>&1)
check "demo reports accuracy" grep -qE "top-1 accuracy (8|9)[0-9]\.[0-9]+%" <<<"$out"

out=$($T register-variant fashion alt tests/fixtures/fashion_cnn.pt 2>&1)
check "register-variant" grep -q "alt *READY" <<<"$out"
# The demo above ran a guarded rollout that may or may not have promoted
# int8 by now, so name the baseline rather than inherit it.
out=$($T policy fashion --shadow alt --baseline fp32 --reason "try alt" 2>&1)
check "shadow policy" grep -q "shadow, baseline fp32, shadow alt" <<<"$out"
for _ in 1 2 3; do $T infer fashion --input "$TMP/images.npy" >/dev/null; done
# Shadow runs are off the response path: wait (up to 10 s) for comparisons.
for _ in $(seq 50); do
  out=$($T compare fashion 2>&1)
  grep -qE "^alt +shadow .* 100\.00 " <<<"$out" && break
  sleep 0.2
done
check "compare shows the shadow agreeing" grep -qE "^alt +shadow .* 100\.00 " <<<"$out"
out=$($T promote fashion alt --reason "looks good" 2>&1)
check "promote" grep -q "pinned, baseline alt" <<<"$out"
out=$($T rollback fashion --reason "changed my mind" 2>&1)
check "rollback" grep -q "shadow, baseline fp32" <<<"$out"
out=$($T history fashion 2>&1)
check "history" grep -q "rollback .*changed my mind" <<<"$out"
# A rollout, set and shown: twinctl used to abort here (the server returned
# the policy without its steps and stage).
out=$($T policy fashion --rollout alt --baseline fp32 --steps 10,50,100 \
  --min-requests 100000 --min-seconds 3600 --max-disagreement 0.05 2>&1); rc=$?
check "rollout policy set" test $rc -eq 0
check "rollout shows its stage and guards" grep -q \
  "rollout of alt at stage 1/3 (10%); a stage holds 100000 requests and 3600 s; guards: disagreement <= 0.05" \
  <<<"$out"
out=$($T policy fashion 2>&1); rc=$?
check "policy during a rollout" eval \
  'test $rc -eq 0 && grep -q "rollout of alt at stage 1/3" <<<"$out"'
version=$(sed -n 's/^policy v\([0-9]*\):.*/\1/p' <<<"$out")
out=$($T rollback fashion --if-version $((version - 1)) 2>&1); rc=$?
check "a stale --if-version is refused (ABORTED), exit 1" eval \
  'test $rc -eq 1 && grep -q "ABORTED: the traffic policy of .fashion. moved on" <<<"$out"'
out=$($T rollback fashion --if-version "$version" --reason "stop" 2>&1)
check "rollback at the version shown" grep -q "shadow, baseline fp32" <<<"$out"

# Dynamic batching: show, set the default, a variant's own, clear, refuse.
out=$($T batching fashion 2>&1)
check "batching shows off" grep -q "model default: off" <<<"$out"
out=$($T batching fashion --max-batch 16 --batch-delay-us 500 --preferred 4,8 2>&1)
check "batching set" grep -q "fp32: *max batch 16, delay 500 us, preferred \[4,8\]" <<<"$out"
out=$($T show fashion 2>&1)
check "show lists batching" grep -q "batching: *max batch 16" <<<"$out"
out=$($T batching fashion --variant fp32 --max-batch 32 2>&1)
check "a variant's own settings" grep -q "fp32: *max batch 32, delay 500 us" <<<"$out"
out=$($T batching fashion --variant fp32 --clear 2>&1)
check "clear falls back to the default" grep -q "fp32: *max batch 16" <<<"$out"
out=$($T batching fashion --max-batch 99999 2>&1); rc=$?
check "bad max batch exits 1 with INVALID_ARGUMENT" test $rc -eq 1
check "names the setting" grep -q "INVALID_ARGUMENT: max_batch_size" <<<"$out"
out=$($T batching fashion --max-batch x 2>&1); rc=$?
check "non-numeric is a usage error (2)" test $rc -eq 2
out=$($T batching fashion --off 2>&1)
check "batching off" grep -q "model default: off" <<<"$out"

# Quantization from the command line: calibration sets from IDX and .npy,
# quantize (following the job), jobs, report, INT8 serving, cancel, refusals.
F=/usr/share/datasets/fashion-mnist
$T register q tests/fixtures/fashion_cnn.pt --input image:FP32:-1,1,28,28 \
  --output logits:FP32:-1,10 >/dev/null
out=$($T calibrate q --idx-images $F/train-images-idx3-ubyte.gz \
  --idx-labels $F/train-labels-idx1-ubyte.gz --limit 256 2>&1)
check "calibrate from IDX files" \
  grep -q "stored set 'calib' of q: 256 samples, .* labelled" <<<"$out"
check "calibrate shows its progress" grep -q "256/256 samples" <<<"$out"
out=$($T calibrate q --set eval --idx-images $F/t10k-images-idx3-ubyte.gz \
  --idx-labels $F/t10k-labels-idx1-ubyte.gz --limit 500 2>&1)
check "an evaluation set" grep -q "stored set 'eval' of q: 500 samples" <<<"$out"
/usr/bin/python3 - "$TMP" <<'PY'
import sys, numpy as np
d = sys.argv[1]
np.save(d + "/small.npy", np.random.rand(8, 1, 28, 28).astype(np.float32))
np.save(d + "/small_labels.npy", np.arange(8) % 10)
np.save(d + "/wrong.npy", np.zeros((4, 1, 27, 28), np.float32))
PY
out=$($T calibrate q --set small --input image="$TMP/small.npy" \
  --labels-npy "$TMP/small_labels.npy" 2>&1)
check "calibrate from .npy with labels" \
  grep -q "stored set 'small' of q: 8 samples, .* labelled" <<<"$out"
out=$($T calibrate q --set wrong --input "$TMP/wrong.npy" 2>&1); rc=$?
check "a sample of the wrong shape exits 1" test $rc -eq 1
check "and names the input and both shapes" grep -qF \
  "INVALID_ARGUMENT: input 'image': expected shape [-1, 1, 28, 28], got [4, 1, 27, 28]" \
  <<<"$out"
out=$($T sets q 2>&1)
check "sets lists what was stored" grep -qE "^small +8 .* yes" <<<"$out"
check "and not what was refused" test "$(grep -c '^wrong' <<<"$out")" -eq 0
out=$($T delete-set q small 2>&1)
check "delete-set" grep -q "deleted set small of q" <<<"$out"
out=$($T quantize q --set nope 2>&1); rc=$?
check "quantize without its set exits 1" test $rc -eq 1
check "and says NOT_FOUND naming the set" \
  grep -q "NOT_FOUND: model 'q' has no calibration set 'nope'" <<<"$out"
out=$($T quantize q --eval-set eval 2>&1); rc=$?
check "quantize follows the job to success" test $rc -eq 0
check "and says what was published" \
  grep -qE "JOB_SUCCEEDED: int8 published: top-1 agreement (9[5-9]|100)\." <<<"$out"
out=$($T jobs q 2>&1)
check "jobs lists it" grep -qE "^q-[^ ]+ +q +int8 +JOB_SUCCEEDED" <<<"$out"
out=$($T report q 2>&1)
check "report: accuracy of both" grep -qE "^top-1 accuracy +[0-9.]+% +[0-9.]+%" <<<"$out"
check "report: sizes" grep -qE "^serialized bytes +[0-9]+ +[0-9]+ +0\.[0-9]+x" <<<"$out"
check "report: per-layer SQNR" grep -qE "^fc.weight +[0-9.]+ +int8" <<<"$out"
out=$($T infer q --version int8 --input "$TMP/images.npy" --top-k 1 2>&1)
check "int8 serves" grep -q "version int8" <<<"$out"
# A slower job (entropy search over 500 samples), cancelled at once.
out=$($T quantize q --set eval --method entropy --no-watch 2>&1)
job=$(sed -n 's/^started job //p' <<<"$out")
out=$($T cancel "$job" 2>&1)
check "cancel" grep -q "cancelling job $job" <<<"$out"
out=$($T watch "$job" 2>&1); rc=$?
check "a cancelled job ends CANCELLED, exit 1" \
  eval 'test $rc -eq 1 && grep -q "JOB_CANCELLED" <<<"$out"'
out=$($T infer q --version int8 --input "$TMP/images.npy" 2>&1)
check "the earlier int8 still serves" grep -q "version int8" <<<"$out"
out=$($T watch q-nope 2>&1); rc=$?
check "watch an unknown job: NOT_FOUND, exit 1" \
  eval 'test $rc -eq 1 && grep -q "NOT_FOUND: no job" <<<"$out"'
$T unregister q >/dev/null

# Quantize at registration, in one call, with a rollout plan.
D=/usr/share/datasets/fashion-mnist
out=$($T register oc tests/fixtures/fashion_cnn.pt \
  --input image:FP32:-1,1,28,28 --output logits:FP32:-1,10 \
  --calibrate-idx $D/train-images-idx3-ubyte.gz \
  --calibrate-labels $D/train-labels-idx1-ubyte.gz --limit 200 \
  --quantize --method minmax --rollout --steps 50,100 --wait 2>&1); rc=$?
check "register --quantize --rollout --wait exits 0" test $rc -eq 0
check "and says the job succeeded" \
  grep -qE "^quantization job [^ ]+: JOB_SUCCEEDED: int8 published" <<<"$out"
check "and lists the int8 variant" grep -qE "int8 +READY" <<<"$out"
out=$($T history oc 2>&1)
check "the plan is in the history" grep -qE "plan +registration +rollout" <<<"$out"
out=$($T register oc2 tests/fixtures/fashion_cnn.pt \
  --input image:FP32:-1,1,28,28 --output logits:FP32:-1,10 \
  --calibrate-idx $D/train-images-idx3-ubyte.gz --limit 10 2>&1); rc=$?
check "samples without --quantize: usage error (2)" test $rc -eq 2
out=$($T register oc2 tests/fixtures/fashion_cnn.pt \
  --input image:FP32:-1,1,14,56 --output logits:FP32:-1,10 \
  --calibrate-idx $D/train-images-idx3-ubyte.gz --limit 10 --quantize 2>&1)
rc=$?
check "samples that do not match the inputs: exit 1, INVALID_ARGUMENT" \
  eval 'test $rc -eq 1 && grep -q "INVALID_ARGUMENT" <<<"$out"'
out=$($T show oc2 2>&1); rc=$?
check "and nothing was stored" test $rc -eq 1
$T unregister oc >/dev/null

out=$($T unregister fashion 2>&1); check "unregister" grep -q "unregistered fashion" <<<"$out"
out=$($T list 2>&1); check "list is empty" test "$(wc -l <<<"$out")" -eq 1

echo "twinctl_test: $fails failures"
[ $fails -eq 0 ]
