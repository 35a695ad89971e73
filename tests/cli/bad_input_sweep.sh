#!/bin/bash
# The bad-input sweep of issue #15: ~200 bad inputs to every command of `flywheel` and
# `flywheel-ckpt`, as a new user would make them (bad_input.sh checks a few more messages exactly).
# Each case must
#   - exit with the documented error code (flywheel: 1, a bare `flywheel` included; flywheel-ckpt:
#     1 error, 2 usage error): never 0 (silent success), never >= 128 (killed by a signal);
#   - finish within 60 s (a hang is a failure);
#   - say so on stderr with the tool's error prefix, naming what was wrong (a grep -E pattern;
#     `flywheel-ckpt verify` reports FAILED per shard on stdout);
#   - not show a source location (src/...cpp:N), an HDF5 error stack (HDF5-DIAG), or raw bytes
#     (stderr and stdout must be UTF-8 text without control characters other than \n and \t);
#   - leave nothing behind: the case's working directory (a fresh empty one) and its output
#     directory stay empty, export/reshard targets and their *.tmp do not exist, run directories a
#     case must not modify are unchanged.
#   bad_input_sweep.sh FLYWHEEL_BINARY FLYWHEEL_CKPT_BINARY SOURCE_DIR
# SOURCE_DIR is the repository root (configs/shapes/*.ini). Single-process commands only (no mpirun).
# SWEEP_JOBS=N runs N cases at once (default 4: a `flywheel` process mostly waits on MPI start-up);
# SWEEP_FILTER=REGEX runs only the cases whose name matches.
set -u
if [ $# -ne 3 ]; then
  echo "usage: $0 FLYWHEEL_BINARY FLYWHEEL_CKPT_BINARY SOURCE_DIR" >&2
  exit 2
fi
flywheel=$(realpath "$1") || exit 1
ckpt=$(realpath "$2") || exit 1
src=$(realpath "$3") || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset FLYWHEEL_LOG  # debug logging would print where each check is
jobs_max=${SWEEP_JOBS:-4}
filter=${SWEEP_FILTER:-}
work=$(mktemp -d)
cleanup() {
  local pids
  pids=$(jobs -p)
  [ -n "$pids" ] && kill $pids 2>/dev/null
  wait 2>/dev/null
  chmod -R u+rwx "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
started=$SECONDS
cases=0 printed=0

dense="$src/configs/shapes/tiny-dense.ini"
moe="$src/configs/shapes/tiny-moe.ini"
rl="$src/configs/shapes/tiny-rl.ini"
in="$work/in"
mkdir -p "$in" "$work/case"

# ---- the case runner ------------------------------------------------------------------------------
# Per-case settings, consumed (and reset) by the next case:
#   D       the case's directory ($D/cwd: its empty working directory, $D/o: an empty output directory)
#   EMPTY   directories that must be empty or absent afterwards ($D/o always is one)
#   ABSENT  paths that must not exist afterwards (nor PATH.tmp)
#   SAME    directories that must be unchanged (names, sizes, modes, mtimes, contents)
#   PREFIX  the error line to expect (default: the tool's "...: error" / "...: usage error" prefix)
#   MSG     stdout: the message may be on stdout too (verify reports FAILED per shard there)
EMPTY="" ABSENT="" SAME="" PREFIX="" MSG=""
fw_prefix='^flywheel: error: '
ck_prefix='^flywheel-ckpt( [a-z]+)?: (usage )?error: '

nd() { D="$work/case/$((cases + 1))"; mkdir -p "$D/cwd" "$D/o"; }

fingerprint() {  # what a case must not change in a directory (a run's .lock: only that it exists; each holder rewrites it)
  (cd "$1" && find . \( -name .lock -printf '%p %y\n' \) -o -printf '%p %y %s %m\n' | sort &&
   find . -type f ! -name .lock -printf '%p %T@\n' | sort && find . -type f ! -name .lock -exec md5sum {} + | sort) 2>&1
}

check_case() {  # check_case DIR NAME CODES PATTERN PREFIX MSG EMPTY ABSENT SAME CMD...
  local d=$1 name=$2 codes=$3 pattern=$4 prefix=$5 msg=$6 empty=$7 absent=$8 same=$9
  shift 9
  local why="" rc p i=0 n f
  for p in $same; do fingerprint "$p" >"$d/before.$i"; i=$((i + 1)); done
  (cd "$d/cwd" && exec timeout -k 5 60 "$@") >"$d/stdout" 2>"$d/stderr" </dev/null
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then why+="; hang: stopped after 60 s (exit $rc)"
  elif [ "$rc" -ge 128 ]; then why+="; crash: exit $rc (signal $((rc - 128)))"
  elif [ "$rc" -eq 0 ]; then why+="; silent success: exit 0"
  elif [[ " $codes " != *" $rc "* ]]; then why+="; exit code $rc, expected ${codes// / or }"
  fi
  # The message: on stderr (verify's per-shard report: stdout).
  if [ "$msg" = stdout ]; then cat "$d/stdout" "$d/stderr" >"$d/message"; else cp "$d/stderr" "$d/message"; fi
  if [ "$rc" -ne 0 ]; then
    grep -aqE -- "$prefix" "$d/message" || why+="; no /$prefix/ line on $msg"
    grep -aqE -- "$pattern" "$d/message" || why+="; $msg does not match /$pattern/"
  fi
  for f in stderr stdout; do
    grep -aqE '(src|tools)/[A-Za-z0-9_/]+\.(cpp|h):[0-9]+' "$d/$f" && why+="; $f shows a source location"
    grep -aq 'HDF5-DIAG' "$d/$f" && why+="; HDF5 error stack on $f"
    n=$(LC_ALL=C tr -d '\n\t\040-\176\200-\377' <"$d/$f" | wc -c)
    [ "$n" -gt 0 ] && why+="; $n raw control byte(s) on $f"
    iconv -f UTF-8 -t UTF-8 "$d/$f" >/dev/null 2>&1 || why+="; $f is not valid UTF-8"
  done
  [ -n "$(ls -A "$d/cwd")" ] &&
    why+="; left behind in the working directory: $(cd "$d/cwd" && find . -mindepth 1 | head -5 | tr '\n' ' ')"
  for p in $empty; do
    [ -d "$p" ] && [ -n "$(ls -A "$p")" ] && why+="; left behind in $p: $(cd "$p" && find . -mindepth 1 | head -5 | tr '\n' ' ')"
  done
  for p in $absent; do
    { [ -e "$p" ] || [ -e "$p.tmp" ]; } && why+="; left behind: $p or $p.tmp exists"
  done
  i=0
  for p in $same; do
    fingerprint "$p" | diff "$d/before.$i" - >"$d/changed.$i" ||
      why+="; modified $p: $(grep '^[<>]' "$d/changed.$i" | head -3 | tr '\n' ' ')"
    i=$((i + 1))
  done
  {
    if [ -z "$why" ]; then
      echo "ok   $name: $(grep -aE -m1 -- "$prefix" "$d/message" | cut -c1-200)"
    else
      echo "FAIL $name: ${why#; }"
      printf '    command:'; printf ' %q' "$@"; printf '\n'
      echo "    exit code: $rc"
      grep -av '^\[[0-9:]* info\] ' "$d/message" | head -c 4000 | head -8 | cut -c1-300 | sed 's/^/    err: /'
    fi
  } >"$d/result.part"
  mv "$d/result.part" "$d/result"
}

flush() {
  while [ "$printed" -lt "$cases" ] && [ -e "$work/case/$((printed + 1))/result" ]; do
    printed=$((printed + 1))
    cat "$work/case/$printed/result"
  done
}

run_case() {  # run_case NAME CODES PATTERN CMD...
  local name=$1 codes=$2 pattern=$3
  shift 3
  nd
  local prefix=$PREFIX msg=${MSG:-stderr} empty="$EMPTY $D/o" absent=$ABSENT same=$SAME
  EMPTY="" ABSENT="" SAME="" PREFIX="" MSG=""
  if [ -n "$filter" ] && ! [[ $name =~ $filter ]]; then return; fi
  if [ -z "$prefix" ]; then
    if [ "$1" = "$ckpt" ]; then prefix=$ck_prefix; else prefix=$fw_prefix; fi
  fi
  cases=$((cases + 1))
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; flush; done
  check_case "$D" "$name" "$codes" "$pattern" "$prefix" "$msg" "$empty" "$absent" "$same" "$@" &
  flush
}

has_arg() {  # has_arg PREFIX ARGS...: whether some ARG starts with PREFIX
  local p=$1 a
  shift
  for a in "$@"; do [[ $a == "$p"* ]] && return 0; done
  return 1
}

# fw_train NAME PATTERN ARGS...: `flywheel train ARGS` (exit 1), train.out_dir $D/o, one thread, 3 steps
# (unless ARGS set those keys): a case that trains by mistake ends quickly, and fails.
fw_train() {
  local name=$1 pattern=$2
  shift 2
  nd
  local extra=()
  has_arg --train.out_dir= "$@" || extra+=("--train.out_dir=$D/o")
  has_arg --train.threads= "$@" || extra+=(--train.threads=1)
  has_arg --train.steps= "$@" || extra+=(--train.steps=3)
  run_case "$name" 1 "$pattern" "$flywheel" train "$@" "${extra[@]}"
}
fw_run() {  # fw_run NAME PATTERN ARGS...: `flywheel run ARGS` (exit 1) writing into $D/o
  local name=$1 pattern=$2
  shift 2
  nd
  local extra=()
  has_arg --train.out_dir= "$@" || extra+=("--train.out_dir=$D/o")
  has_arg --train.threads= "$@" || extra+=(--train.threads=1)
  run_case "$name" 1 "$pattern" "$flywheel" run "$@" "${extra[@]}"
}
fw() {  # fw NAME PATTERN ARGS...: `flywheel ARGS`, exit 1
  local name=$1 pattern=$2
  shift 2
  run_case "$name" 1 "$pattern" "$flywheel" "$@"
}
ck() {  # ck NAME CODES PATTERN ARGS...: `flywheel-ckpt ARGS`
  local name=$1 codes=$2 pattern=$3
  shift 3
  run_case "$name" "$codes" "$pattern" "$ckpt" "$@"
}

# ---- inputs ---------------------------------------------------------------------------------------
w() { printf "$2" >"$in/$1"; }  # w NAME PRINTF_FORMAT: a small input file
# block N: N x 256 fixed "random" bytes (every byte value once per block; the same on every run)
bytes_fmt=$(for i in $(seq 0 255); do printf '\\%03o' $(((i * 167 + 13) % 256)); done)
block() { local i; for ((i = 0; i < $1; i++)); do printf "$bytes_fmt"; done; }
w empty.ini ''
w comments.ini '# nothing but comments\n[model]\n# and a section\n[train]\n'
block 8 >"$in/random.ini"
cp /bin/ls "$in/ls.ini"
w nul.ini '[model]\nd_model = 12\0008\n'
w latin1.ini '[train]\nrun_name = caf\351\n'
w unknown-section.ini '[modle]\nd_model = 64\n'
w unknown-key.ini '[train]\nlearning_rate = 0.1\n'
w no-section.ini 'd_model = 64\n'
w duplicate.ini '[model]\nd_model = 64\nn_layers = 2\nd_model = 128\n'
w trailing.ini '[model]\nd_model = 64abc\n'
w overflow.ini '[model]\nn_layers = 99999999999999999999\n'
w bool.ini '[model]\ntie_embeddings = maybe\n'
mkfifo "$in/fifo.ini"
w dup-key.jsonl '{"prompt": "1+1=", "completion": "2", "prompt": "2+2="}\n'
w no-prompt.jsonl '{"prompt": "1+1=", "completion": "2"}\n{"completion": "4"}\n'
w number.jsonl '{"prompt": 12, "completion": "2"}\n'
w array.jsonl '{"prompt": "1+1=", "completion": "2"}\n[1, 2]\n'
w truncated.jsonl '{"prompt": "1+1=", "completion": "2"}\n{"prompt": "2+2=", "compl'
w empty.jsonl ''
printf '{"prompt": "1+1=", "completion": "2"}\n{"prompt": "' >"$in/binary.jsonl"
block 1 | tr -d '"\\\n' >>"$in/binary.jsonl"
printf '", "completion": "x"}\n' >>"$in/binary.jsonl"
long=$(printf 'x%.0s' $(seq 60))
printf '{"prompt": "%s", "completion": "y"}\n{"prompt": "%s", "completion": "z"}\n' "$long" "$long" >"$in/long.jsonl"
w pairs.jsonl '{"prompt": "1+1=", "chosen": "2", "rejected": "3"}\n{"prompt": "2+2=", "chosen": "4", "rejected": "5"}\n'
w pairs-no-rejected.jsonl '{"prompt": "1+1=", "chosen": "2", "rejected": "3"}\n{"prompt": "2+2=", "chosen": "4"}\n'
w short.txt 'too short\n'
w a-file 'not a directory\n'
mkdir "$in/empty-dir" "$in/jsonl-dir"

# A real run directory, $good (steps 2 and 4), and damaged copies of it.
"$flywheel" train --shape "$dense" --model.n_layers=2 --train.steps=4 --train.checkpoint_every=2 \
  --train.out_dir="$work/good" --train.run_name=r --train.threads=1 >"$work/good.log" 2>&1 ||
  { echo "FAIL setup: flywheel train did not make the checkpoint:"; tail -20 "$work/good.log"; exit 1; }
good="$work/good/r"
[ -d "$good/step-00000002" ] && [ -d "$good/step-00000004" ] ||
  { echo "FAIL setup: expected steps 2 and 4 in $good:"; ls -la "$good"; exit 1; }
shard=step-00000004/shard-00000.h5
copy() { cp -a "$good" "$work/$1"; echo "$work/$1"; }
truncated=$(copy truncated); truncate -s 1000000 "$truncated/$shard"
all_bad=$(copy all-bad); truncate -s 1000000 "$all_bad/$shard" "$all_bad/step-00000002/shard-00000.h5"
flipped=$(copy flipped); printf '\377%.0s' $(seq 256) | dd of="$flipped/$shard" bs=1 seek=2000000 conv=notrunc status=none
no_shard=$(copy no-shard); rm "$no_shard/$shard"
state_short=$(copy state-short); truncate -s 100 "$state_short/step-00000004/state.h5"
state_random=$(copy state-random); block 33 >"$state_random/step-00000004/state.h5"
no_model=$(copy no-model); rm "$no_model/step-00000004/model.h5"
latest_garbage=$(copy latest-garbage); printf 'garbage\001\377\n' >"$latest_garbage/latest"
latest_missing=$(copy latest-missing); printf 'step-00000099' >"$latest_missing/latest"
shape_only="$work/shape-only"; mkdir "$shape_only"; cp "$good/shape.ini" "$shape_only/"
shape_random=$(copy shape-random); block 2 >"$shape_random/shape.ini"
for r in ledger-bad ledger-missing-step ledger-negative ledger-binary ledger-dir; do mkdir "$work/$r"; done
printf '{"event": "loaded", "step": 2}\n{"event": "loaded", "step": "two"}\n' >"$work/ledger-bad/ledger.jsonl"
printf '{"event": "loaded", "step": 2}\n{"event": "loaded"}\n' >"$work/ledger-missing-step/ledger.jsonl"
printf '{"event": "loaded", "step": -4}\n' >"$work/ledger-negative/ledger.jsonl"
printf '{"event": "loaded", "step": 2}\n{"event": "\377\376\033[2J", "step": 3}\n' >"$work/ledger-binary/ledger.jsonl"
mkdir "$work/ledger-dir/ledger.jsonl"
good_before=$(fingerprint "$good")

# ---- flywheel: the command line -------------------------------------------------------------------
PREFIX='usage: flywheel'; run_case "flywheel: no arguments (usage on stderr, exit 1 as an unknown command)" 1 "eval --run DIR" "$flywheel"
fw "flywheel: unknown command" "unknown command 'trian'" trian --shape "$dense"
fw "flywheel run: no --shape" "missing --shape" run
fw_train "flywheel train: unknown option" "unknown option '--verbose'" --shape "$dense" --verbose
fw_train "flywheel train: stray positional argument" "unexpected argument 'extra.ini'" --shape "$dense" extra.ini
fw_train "flywheel train: --shape twice" "--shape is given twice" --shape "$dense" --shape "$moe"
fw "flywheel train: --shape without a value" "--shape needs a value" train --shape
fw_train "flywheel train: override without a value" "--train.lr needs a value" --shape "$dense" --train.lr
fw_train "flywheel train: override with an empty value" "train.micro_batch" --shape "$dense" --train.micro_batch=
fw_train "flywheel train: override given twice" "--train.seed is given twice" --shape "$dense" --train.seed=1 --train.seed=2
fw_train "flywheel train: override holding '#'" "cannot hold '#'" --shape "$dense" --train.run_name=a#b
fw_train "flywheel train: override of an unknown section" "unrecognised option '--optim.lr'" --shape "$dense" --optim.lr=0.1

# ---- flywheel: shape files ------------------------------------------------------------------------
fw_train "shape: in a missing directory" "shape file '.*no/such/dir/x.ini' does not exist" --shape "$work/no/such/dir/x.ini"
fw_train "shape: a directory" "shape file '.*empty-dir' does not exist or is not a file" --shape "$in/empty-dir"
fw_train "shape: /dev/zero (no hang)" "shape file '/dev/zero' .*not a file" --shape /dev/zero
fw_train "shape: a FIFO (no hang)" "shape file '.*fifo.ini' .*not a file" --shape "$in/fifo.ini"
fw_train "shape: empty file" "empty.ini' sets no key" --shape "$in/empty.ini"
fw_train "shape: only comments and sections" "comments.ini' sets no key" --shape "$in/comments.ini"
fw_train "shape: random bytes" "random.ini' is not a text file" --shape "$in/random.ini"
fw_train "shape: an executable (/bin/ls)" "ls.ini' is not a text file" --shape "$in/ls.ini"
fw_train "shape: NUL byte in a value" "nul.ini' is not a text file" --shape "$in/nul.ini"
fw_train "shape: Latin-1 byte" "latin1.ini' is not a text file" --shape "$in/latin1.ini"
fw_train "shape: unknown section" "unknown-section.ini.*modle.d_model" --shape "$in/unknown-section.ini"
fw_train "shape: unknown key" "unknown-key.ini.*train.learning_rate" --shape "$in/unknown-key.ini"
fw_train "shape: key before any section" "no-section.ini.*d_model" --shape "$in/no-section.ini"
fw_train "shape: key given twice" "duplicate.ini' line 4.*model.d_model" --shape "$in/duplicate.ini"
fw_train "shape: trailing garbage in a number" "trailing.ini' line 2.*model.d_model" --shape "$in/trailing.ini"
fw_train "shape: integer overflow" "overflow.ini' line 2.*model.n_layers" --shape "$in/overflow.ini"
fw_train "shape: not a boolean" "bool.ini' line 2.*model.tie_embeddings" --shape "$in/bool.ini"

# ---- flywheel train: [model] ----------------------------------------------------------------------
fw_train "model.d_model not a number" "model.d_model" --shape "$dense" --model.d_model=abc
fw_train "model.d_model negative" "model.d_model = -128: must be a positive integer" --shape "$dense" --model.d_model=-128
fw_train "model.d_model zero" "model.d_model = 0: must be a positive integer" --shape "$dense" --model.d_model=0
fw_train "model.d_model = 4e9 (memory)" "the model needs .* GiB.* on trainer rank 0, the machine has .* GiB" --shape "$dense" --model.d_model=4000000000
fw_train "model.n_layers zero" "model.n_layers = 0" --shape "$dense" --model.n_layers=0
fw_train "model.n_heads not dividing d_model" "model.n_heads = 3 does not divide model.d_model = 128" --shape "$dense" --model.n_heads=3
fw_train "model.d_model/n_heads odd" "head_dim = 25 .*odd" --shape "$dense" --model.d_model=100
fw_train "model.n_kv_heads above n_heads" "n_kv_heads = 8 does not divide model.n_heads = 4" --shape "$dense" --model.n_kv_heads=8
fw_train "model.vocab_size zero" "model.vocab_size = 0" --shape "$dense" --model.vocab_size=0
fw_train "model.vocab_size below the byte tokenizer" "vocab_size.*100" --shape "$dense" --model.vocab_size=100
fw_train "model.max_seq_len below train.seq_len" "train.seq_len = 24 exceeds model.max_seq_len = 16" --shape "$dense" --model.max_seq_len=16
fw_train "model.head_dim odd" "model.head_dim = 7 is odd" --shape "$dense" --model.head_dim=7
fw_train "model.rope_theta inf" "model.rope_theta = inf: must be a finite number" --shape "$dense" --model.rope_theta=inf
fw_train "model.norm_eps nan" "model.norm_eps = nan: must be a finite number" --shape "$dense" --model.norm_eps=nan
fw_train "model.init_std 1e999" "model.init_std" --shape "$dense" --model.init_std=1e999
fw_train "model.forward_kernels unknown" "model.forward_kernels = 'cuda'" --shape "$dense" --model.forward_kernels=cuda
fw_train "model.moe_top_k zero" "model.moe_top_k = 0 is not in \[1, model.moe_experts = 8\]" --shape "$moe" --model.moe_top_k=0
fw_train "model.moe_aux_loss_coef negative" "model.moe_aux_loss_coef = -1: must be >= 0" --shape "$moe" --model.moe_aux_loss_coef=-1
# ---- flywheel train: [lora] -----------------------------------------------------------------------
fw_train "lora.rank negative" "lora.rank = -1: must be >= 1 \(0: no adapters" --shape "$dense" --lora.rank=-1
fw_train "lora.rank above a target's side" "lora.rank = 200 is larger than the smaller side \(128\) of the q matrices" --shape "$dense" --lora.rank=200
fw_train "lora.targets unknown" "lora.targets = 'q,qkv': unknown target 'qkv'; allowed: a comma-separated list of q, k, v, o, gate, up, down, experts, or all-linear" --shape "$dense" --lora.rank=4 --lora.targets=q,qkv
fw_train "lora.targets typo without a rank" "unknown target 'attn'" --shape "$dense" --lora.targets=attn
fw_train "lora.targets experts on a dense model" "adapts no matrix of this model \(dense: no experts\)" --shape "$dense" --lora.rank=4 --lora.targets=experts
fw_train "lora.alpha zero" "lora.alpha = 0: must be a finite number > 0" --shape "$dense" --lora.rank=4 --lora.alpha=0
fw_train "lora.dropout nonzero" "lora.dropout = 0.05: not supported yet; allowed: 0" --shape "$dense" --lora.rank=4 --lora.dropout=0.05
fw_train "mesh.ep not dividing fsdp x cp" "mesh.ep = 3 does not divide" --shape "$moe" --mesh.ep=3

# ---- flywheel train: [train] ----------------------------------------------------------------------
fw_train "train.lr inf" "train.lr = inf: must be a finite number" --shape "$dense" --train.lr=inf
fw_train "train.lr negative" "train.lr = -1: must be > 0" --shape "$dense" --train.lr=-1
fw_train "train.lr 1e999" "train.lr" --shape "$dense" --train.lr=1e999
fw_train "train.lr not a number" "train.lr" --shape "$dense" --train.lr=fast
fw_train "train.min_lr above train.lr" "train.min_lr = 0.1: must be in \[0, train.lr = 0.003\]" --shape "$dense" --train.min_lr=0.1
fw_train "train.grad_clip negative" "train.grad_clip = -1: must be >= 0" --shape "$dense" --train.grad_clip=-1
fw_train "train.weight_decay negative" "train.weight_decay = -0.1: must be >= 0" --shape "$dense" --train.weight_decay=-0.1
fw_train "train.beta1 = 1" "train.beta1 = 1: must be in \[0, 1\)" --shape "$dense" --train.beta1=1
fw_train "train.beta2 above 1" "train.beta2 = 1.5: must be in \[0, 1\)" --shape "$dense" --train.beta2=1.5
fw_train "train.adam_eps zero" "train.adam_eps = 0: must be > 0" --shape "$dense" --train.adam_eps=0
fw_train "train.steps zero" "train.steps = 0: must be a positive integer" --shape "$dense" --train.steps=0
fw_train "train.steps not a number" "train.steps" --shape "$dense" --train.steps=ten
fw_train "train.seq_len below the task's prompts" "train.seq_len = 4" --shape "$dense" --train.seq_len=4
fw_train "train.micro_batch zero" "train.micro_batch = 0" --shape "$dense" --train.micro_batch=0
fw_train "train.threads negative" "train.threads = -1" --shape "$dense" --train.threads=-1
fw_train "train.seed negative" "train.seed" --shape "$dense" --train.seed=-1
fw_train "train.objective unknown (case)" "train.objective = 'SFT'" --shape "$dense" --train.objective=SFT
fw_train "train.resume unknown" "train.resume = 'always': allowed values are auto, never" --shape "$dense" --train.resume=always
fw_train "train.out_dir empty" "train.out_dir is empty" --shape "$dense" --train.out_dir=
fw_train "train.run_name with a slash" "train.run_name = 'a/b'" --shape "$dense" --train.run_name=a/b
nd; SAME="$good"
fw_train "train.resume = never on an existing run" "train.resume|never|exists" --shape "$dense" --model.n_layers=2 \
  --train.out_dir="$work/good" --train.run_name=r --train.resume=never
fw_train "train.init_from missing directory" "$work/no-such-run" --shape "$dense" --train.init_from="$work/no-such-run"
fw_train "train.init_from a file" "train.init_from.*a-file" --shape "$dense" --train.init_from="$in/a-file"
nd; SAME="$all_bad"
fw_train "train.init_from a corrupt checkpoint" "shard-00000.h5|checksum|size" --shape "$dense" --model.n_layers=2 --train.init_from="$all_bad"
nd; SAME="$good"
fw_train "train.init_from another model" "n_layers|layers|shape|tensor" --shape "$dense" --train.init_from="$good"

# ---- flywheel train: DPO, [data], [mesh] ----------------------------------------------------------
fw_train "dpo: mesh.cp = 2" "mesh.cp = 2" --shape "$dense" --train.objective=dpo --data.source=jsonl:"$in/pairs.jsonl" --mesh.cp=2
fw_train "dpo: odd rows per rank" "train.micro_batch" --shape "$dense" --train.objective=dpo --data.source=jsonl:"$in/pairs.jsonl" --train.micro_batch=3
fw_train "dpo: rl.dpo_beta zero" "rl.dpo_beta = 0" --shape "$dense" --train.objective=dpo --data.source=jsonl:"$in/pairs.jsonl" --rl.dpo_beta=0
fw_train "dpo: a pair without rejected" "pairs-no-rejected.jsonl.* line 2.*rejected" --shape "$dense" --train.objective=dpo --data.source=jsonl:"$in/pairs-no-rejected.jsonl"
fw_train "dpo: empty preference file" "empty.jsonl' contains no pairs" --shape "$dense" --train.objective=dpo --data.source=jsonl:"$in/empty.jsonl"
fw_train "data.source unknown scheme" "data.source = 'http://example.com/data' is not recognised" --shape "$dense" --data.source=http://example.com/data
fw_train "data.source text: missing file" "cannot open data file '.*absent.txt'" --shape "$dense" --data.source=text:"$in/absent.txt"
fw_train "data.source a directory" "data file '.*jsonl-dir' is a directory" --shape "$dense" --data.source=jsonl:"$in/jsonl-dir"
fw_train "jsonl: duplicate key" "dup-key.jsonl.* line 1.*\"prompt\" is given twice" --shape "$dense" --data.source=jsonl:"$in/dup-key.jsonl"
fw_train "jsonl: line without prompt" "no-prompt.jsonl.* line 2.*prompt" --shape "$dense" --data.source=jsonl:"$in/no-prompt.jsonl"
fw_train "jsonl: prompt not a string" "number.jsonl.* line 1.*\"prompt\" must be a string" --shape "$dense" --data.source=jsonl:"$in/number.jsonl"
fw_train "jsonl: line not an object" "array.jsonl.* line 2.*array" --shape "$dense" --data.source=jsonl:"$in/array.jsonl"
fw_train "jsonl: truncated last line" "truncated.jsonl.* line 2.*JSON" --shape "$dense" --data.source=jsonl:"$in/truncated.jsonl"
fw_train "jsonl: raw bytes in a line" "binary.jsonl.* line 2.*not text" --shape "$dense" --data.source=jsonl:"$in/binary.jsonl"
fw_train "jsonl: empty file" "empty.jsonl' contains no examples" --shape "$dense" --data.source=jsonl:"$in/empty.jsonl"
fw_train "jsonl: every prompt longer than seq_len" "long.jsonl': no example keeps a completion token" --shape "$dense" --data.source=jsonl:"$in/long.jsonl"
fw_train "text: shorter than a row" "short.txt' has 10 bytes" --shape "$dense" --data.source=text:"$in/short.txt"
fw_train "data.task_max_digits zero" "data.task_max_digits = 0" --shape "$dense" --data.task_max_digits=0
fw_train "mesh.fsdp = 2 on one process" "needs pp x fsdp x cp \+ serve = 1 x 2 x 1 \+ 0 = 2 ranks, but the job has 1" --shape "$dense" --mesh.fsdp=2
fw_train "mesh.fsdp zero" "mesh.fsdp = 0: must be a positive integer" --shape "$dense" --mesh.fsdp=0
fw_train "mesh.serve negative" "mesh.serve = -1" --shape "$dense" --mesh.serve=-1
fw_train "mesh.pp not dividing n_layers" "mesh.pp = 3" --shape "$dense" --mesh.pp=3
fw_train "micro_batch not divisible by fsdp" "micro_batch = 7 is not divisible by mesh.fsdp = 2" --shape "$dense" --train.micro_batch=7 --mesh.fsdp=2
fw_train "mesh.cp not dividing seq_len" "2 x mesh.cp = 10" --shape "$dense" --mesh.cp=5

# ---- flywheel run (GRPO) --------------------------------------------------------------------------
fw_run "rl.max_new_tokens above max_seq_len" "rl.max_new_tokens = 1000 does not fit" --shape "$rl" --rl.max_new_tokens=1000
fw_run "rl.temperature nan" "rl.temperature = nan: must be a finite number" --shape "$rl" --rl.temperature=nan
fw_run "rl.temperature negative" "rl.temperature = -1: must be > 0" --shape "$rl" --rl.temperature=-1
fw_run "rl.top_p above 1" "rl.top_p = 1.5: must be in \(0, 1\]" --shape "$rl" --rl.top_p=1.5
fw_run "rl.group_size zero" "rl.group_size = 0: must be >= 2" --shape "$rl" --rl.group_size=0
fw_run "rl.task unknown" "unknown task 'multiply'" --shape "$rl" --rl.task=multiply
fw_run "rl.rollout_lag 2" "rl.rollout_lag = 2: allowed values are 0, 1" --shape "$rl" --rl.rollout_lag=2
fw_run "rl.serve_dtype unknown" "rl.serve_dtype = 'fp16'" --shape "$rl" --rl.serve_dtype=fp16
fw_run "rl.tis_cap between 0 and 1" "rl.tis_cap = 0.5: must be 0 \(off\) or >= 1" --shape "$rl" --rl.tis_cap=0.5
fw_run "rl.reward unknown" "rl.reward = 'model': allowed values are task, file" --shape "$rl" --rl.reward=model
fw_run "rl.reward = file without a command" "rl.reward = file needs rl.reward_command" --shape "$rl" --rl.reward=file
fw_run "rl.sft_steps above train.steps" "rl.sft_steps = 500 leaves no RL step of train.steps = 200" --shape "$rl" --rl.sft_steps=500
fw_run "run: train.objective = sft" "train.objective = 'sft': .flywheel run. trains grpo" --shape "$rl" --train.objective=sft
fw_run "run: train.init_from" "train.init_from is for .flywheel train." --shape "$rl" --train.init_from="$good"
fw_run "run: a valid shape on one process" "= 1 x 1 x 1 \+ 1 = 2 ranks, but the job has 1" --shape "$rl"

# ---- flywheel plan --------------------------------------------------------------------------------
fw "plan: no --shape" "missing --shape" plan
fw "plan: missing shape file" "shape file '.*absent.ini' does not exist" plan --shape "$in/absent.ini"
fw "plan: empty shape file" "empty.ini' sets no key" plan --shape "$in/empty.ini"
fw "plan: heads not dividing d_model" "model.n_heads = 5 does not divide model.d_model = 128" plan --shape "$dense" --model.n_heads=5
fw "plan: --ranks 0" "--ranks 0: needs a positive number" plan --shape "$dense" --ranks 0
fw "plan: --ranks not a number" "--ranks 'four'" plan --shape "$dense" --ranks four
fw "plan: --device-mem negative" "--device-mem -1: needs a positive number" plan --shape "$dense" --device-mem -1
fw "plan: --device-mem inf" "--device-mem 'inf' is not a finite number" plan --shape "$dense" --device-mem inf

# ---- flywheel eval --------------------------------------------------------------------------------
fw "eval: no --run" "missing --run" eval
fw "eval: missing run directory" "no-such-run" eval --run "$work/no-such-run"
fw "eval: a file as run directory" "a-file" eval --run "$in/a-file"
fw "eval: run without checkpoints" "no committed checkpoint|checkpoint" eval --run "$shape_only" --examples 4
fw "eval: unreadable shape.ini" "shape.ini' is not a text file" eval --run "$shape_random" --examples 4
fw "eval: unknown --task" "unknown task 'multiply'" eval --run "$good" --task multiply --examples 4
fw "eval: --step not committed" "step 99|99" eval --run "$good" --step 99 --examples 4
fw "eval: --step not a number" "--step .abc. is not a step number" eval --run "$good" --step abc --examples 4
fw "eval: --step with trailing garbage" "2x" eval --run "$good" --step 2x --examples 4
fw "eval: --examples 0" "--examples = 0: needs a positive number" eval --run "$good" --examples 0
fw "eval: --data missing file" "absent.jsonl" eval --run "$good" --data "$in/absent.jsonl" --examples 4
fw "eval: --data malformed" "truncated.jsonl.* line 2" eval --run "$good" --data "$in/truncated.jsonl" --examples 4
nd; ABSENT="$D/o/missing/x.json"
fw "eval: --json in a missing directory" "cannot write --json .*missing/x.json" eval --run "$good" --json "$D/o/missing/x.json" --examples 4
fw "eval: corrupt shard" "shard-00000.h5" eval --run "$truncated" --step 4 --examples 4

# ---- flywheel-ckpt: the command line --------------------------------------------------------------
PREFIX='^usage: flywheel-ckpt'; ck "ckpt: no arguments" 2 "commands:" 
ck "ckpt: unknown command" 2 "unknown command 'inpsect'" inpsect "$good"
ck "ckpt inspect: no RUN_DIR" 2 "missing RUN_DIR" inspect
ck "ckpt verify: no RUN_DIR" 2 "missing RUN_DIR" verify
ck "ckpt diff: one side only" 2 "missing RUN_A.*RUN_B" diff "$good"
ck "ckpt reshard: no --out" 2 "missing --out" reshard "$good" --mesh fsdp=2
nd; ck "ckpt reshard: no --mesh" 2 "missing --mesh" reshard "$good" --out "$D/o/run"
nd; ck "ckpt export: no --format" 2 "missing --format" export "$good" --out "$D/o/m.safetensors"
ck "ckpt export: no --out" 2 "missing --out" export "$good" --format safetensors
ck "ckpt ledger: no RUN_DIR" 2 "missing RUN_DIR" ledger
ck "ckpt rollback: no --step" 2 "missing --step" rollback "$good"
ck "ckpt list: two directories" 2 "unexpected argument" list "$good" "$good"
ck "ckpt inspect: unknown option" 2 "unknown option '--verbose'" inspect "$good" --verbose

# ---- flywheel-ckpt: run directories and steps -----------------------------------------------------
ck "ckpt verify: missing run directory" 1 "run directory .*no-such-run does not exist" verify "$work/no-such-run"
ck "ckpt inspect: a file as RUN_DIR" 1 "a-file is not a directory" inspect "$in/a-file"
ck "ckpt verify: empty directory" 1 "no committed checkpoint in .*empty-dir" verify "$in/empty-dir"
ck "ckpt inspect: --step not a number" 2 "--step 'abc' is not a step number" inspect "$good" --step abc
ck "ckpt inspect: --step negative" 2 "--step '-1' is not a step number" inspect "$good" --step -1
ck "ckpt verify: --step not committed" 1 "step 3 is not a committed checkpoint .*committed steps: 2, 4" verify "$good" --step 3
ck "ckpt verify: --all with --step" 2 "--all|--step" verify "$good" --all --step 2
ck "ckpt diff: missing run" 1 "no-such-run does not exist" diff "$good" "$work/no-such-run"
ck "ckpt diff: step not committed" 1 "step 99 is not a committed checkpoint" diff "$good:99" "$good"
ck "ckpt diff: --fail-above negative" 2 "--fail-above" diff "$good:2" "$good:4" --fail-above -1

# ---- flywheel-ckpt: damaged checkpoints -----------------------------------------------------------
MSG=stdout; PREFIX="FAILED"; ck "ckpt verify: truncated shard" 1 "shard-00000.h5.*(size|FAILED)" verify "$truncated" --no-progress
MSG=stdout; PREFIX="FAILED"; ck "ckpt verify: overwritten shard bytes" 1 "shard-00000.h5|checksum" verify "$flipped" --no-progress
MSG=stdout; PREFIX="FAILED"; ck "ckpt verify: missing shard" 1 "shard-00000.h5" verify "$no_shard" --no-progress
MSG=stdout; PREFIX="FAILED"; ck "ckpt verify: truncated state.h5" 1 "state.h5" verify "$state_short" --no-progress
ck "ckpt inspect: random state.h5" 1 "state.h5" inspect "$state_random"
MSG=stdout; PREFIX="FAILED"; ck "ckpt verify: missing model.h5" 1 "model.h5" verify "$no_model" --no-progress
MSG=stdout; PREFIX="FAILED"; ck "ckpt verify: garbage in latest" 1 "latest" verify "$latest_garbage" --no-progress
MSG=stdout; PREFIX="FAILED"; ck "ckpt verify: latest names a missing step" 1 "latest|step-00000099|99" verify "$latest_missing" --no-progress
nd; SAME="$flipped"; ck "ckpt diff: a corrupt side" 1 "shard-00000.h5|checksum" diff "$good:4" "$flipped:4" --no-progress

# ---- flywheel-ckpt reshard ------------------------------------------------------------------------
nd; SAME="$good"; ck "ckpt reshard: --mesh fsdp=0" "1 2" "fsdp" reshard "$good" --out "$D/o/run" --mesh fsdp=0 --no-progress
nd; ck "ckpt reshard: --mesh fsdp=abc" 2 "--mesh 'fsdp=abc'.*fsdp=abc is not a non-negative integer" reshard "$good" --out "$D/o/run" --mesh fsdp=abc
nd; ck "ckpt reshard: --mesh unknown axis" 2 "unknown key 'tp'" reshard "$good" --out "$D/o/run" --mesh tp=2
nd; ck "ckpt reshard: --mesh not key=value" 2 "item 'fsdp' is not key=value" reshard "$good" --out "$D/o/run" --mesh fsdp
nd; ck "ckpt reshard: --mesh fsdp=100000" 1 "target mesh .*fsdp=100000" reshard "$good" --out "$D/o/run" --mesh fsdp=100000 --no-progress
nd; ck "ckpt reshard: --mesh pp=3 (2 layers)" 1 "target mesh .*pp=3" reshard "$good" --out "$D/o/run" --mesh pp=3 --no-progress
nd; SAME="$good"; ck "ckpt reshard: --out is the source" 1 "is the source run directory" reshard "$good" --out "$good" --mesh fsdp=2 --no-progress
nd; cp -a "$good" "$D/run"; SAME="$D/run"
ck "ckpt reshard: --out already has the step" 1 "already has a committed step 4; pass --force" reshard "$good" --out "$D/run" --mesh fsdp=2 --no-progress
nd; ck "ckpt reshard: --set unknown key" 2 "--set.*model.bogus" reshard "$good" --out "$D/o/run" --mesh fsdp=2 --set model.bogus=1
nd; ck "ckpt reshard: --set without =" 2 "--set" reshard "$good" --out "$D/o/run" --mesh fsdp=2 --set model.n_layers
nd; ck "ckpt reshard: --out under a file" 1 "a-file" reshard "$good" --out "$in/a-file/run" --mesh fsdp=2 --no-progress
nd; SAME="$truncated"; ck "ckpt reshard: corrupt shard" 1 "shard-00000.h5" reshard "$truncated" --out "$D/o/run" --mesh fsdp=2 --no-progress
nd; ck "ckpt reshard: missing run" 1 "no-such-run does not exist" reshard "$work/no-such-run" --out "$D/o/run" --mesh fsdp=2

# ---- flywheel-ckpt export -------------------------------------------------------------------------
nd; ck "ckpt export: --format unknown" 2 "--format onnx is not supported \(allowed: safetensors, hf, peft\)" export "$good" --format onnx --out "$D/o/m.onnx"
nd; ck "ckpt export: --out in a missing directory" 1 "directory .*o/missing does not exist" export "$good" --format safetensors --out "$D/o/missing/m.safetensors"
nd; ck "ckpt export: --out a directory" 1 "is a directory" export "$good" --format safetensors --out "$D/o"
nd; ck "ckpt export: --step not committed" 1 "step 3 is not a committed checkpoint" export "$good" --format safetensors --out "$D/o/m.safetensors" --step 3
nd; ck "ckpt export: truncated shard" 1 "shard-00000.h5" export "$truncated" --format safetensors --out "$D/o/m.safetensors" --no-progress
nd; ck "ckpt export: overwritten shard bytes" 1 "shard-00000.h5|checksum" export "$flipped" --format safetensors --out "$D/o/m.safetensors" --no-progress
nd; ck "ckpt export: random state.h5" 1 "state.h5" export "$state_random" --format safetensors --out "$D/o/m.safetensors" --no-progress

# ---- flywheel-ckpt rollback, ledger, list ---------------------------------------------------------
nd; cp -a "$good" "$D/run"; SAME="$D/run"; ck "ckpt rollback: --step not a number" 2 "--step 'two'" rollback "$D/run" --step two
nd; cp -a "$good" "$D/run"; SAME="$D/run"; ck "ckpt rollback: --step not committed" 1 "step 3 is not a committed checkpoint" rollback "$D/run" --step 3 --no-progress
nd; cp -a "$flipped" "$D/run"; SAME="$D/run"
ck "ckpt rollback: to a corrupt step" 1 "shard-00000.h5|checksum" rollback "$D/run" --step 4 --no-progress
ck "ckpt rollback: missing run" 1 "no-such-run does not exist" rollback "$work/no-such-run" --step 2
nd; SAME="$work/ledger-bad"; ck "ckpt ledger: bad step value" 1 "ledger.jsonl.*line 2" ledger "$work/ledger-bad"
ck "ckpt ledger: line without step" 1 "ledger.jsonl.*line 2.*step" ledger "$work/ledger-missing-step"
ck "ckpt ledger: raw bytes in a line" 1 "ledger.jsonl.*line 2" ledger "$work/ledger-binary"
ck "ckpt ledger: ledger.jsonl a directory" 1 "ledger.jsonl" ledger "$work/ledger-dir"
ck "ckpt ledger: --tail negative" 2 "--tail -1: must be >= 0" ledger "$work/ledger-bad" --tail -1
ck "ckpt list: missing directory" 1 "no-such-dir" list "$work/no-such-dir"
ck "ckpt list: a file" 1 "a-file" list "$in/a-file"

wait
flush
cases=$((cases + 1)) name="the source checkpoints are untouched"
failures=$(cat "$work"/case/*/result 2>/dev/null | grep -c '^FAIL')
if diff <(echo "$good_before") <(fingerprint "$good") >"$work/good.diff"; then echo "ok   $name"
else echo "FAIL $name: $good changed:"; grep '^[<>]' "$work/good.diff" | head -10 | sed 's/^/    /'; failures=$((failures + 1)); fi
echo "$((cases - failures)) passed, $failures failed ($cases cases, $((SECONDS - started)) s)"
[ "$failures" -eq 0 ]
