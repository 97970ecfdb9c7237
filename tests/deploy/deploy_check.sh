#!/usr/bin/env bash
# deploy_check.sh <check> TOOLS_DIR (label deploy): offline checks of deploy/, one per ctest test.
#   setup      install the pinned npm validators into TOOLS_DIR (cached; fails clearly offline)
#   offline    setup.sh against an unreachable registry must fail and say so (never pass silently)
#   render     kubectl kustomize of every overlay equals the committed deploy/k8s/rendered/*.yaml
#              (exit 77 = skipped when kubectl is not installed)
#   validate   every rendered object against the Kubernetes schemas, the MPIJob schema and the
#              cross-references (counts, selectors, probes, references)
#   negative   broken variants of the dev render (one mutation each) must each be caught with
#              the expected message: proves validate and flags can fail
#   flags      every flag / IBRL_* variable in the manifests is accepted by the binary's --help
#   dockerfile static checks of deploy/docker/Dockerfile, apt-get -s of its packages, and the
#              runtime stage against the shared libraries the built binaries need
set -u
what=${1:?usage: deploy_check.sh <check> TOOLS_DIR}
tools=${2:?usage: deploy_check.sh <check> TOOLS_DIR}
SRC="${IB_SOURCE_DIR:?IB_SOURCE_DIR not set}"
BIN="${IB_BIN_DIR:?IB_BIN_DIR not set}"
V="$SRC/deploy/validate"
R="$SRC/deploy/k8s/rendered"
need_tools() {
  [ -f "$tools/node_modules/.ibrl-lock-sha256" ] || { echo "FAIL: validators not installed in $tools (HINT: the deploy_setup test runs first: $V/setup.sh $tools)"; exit 1; }
  # Refresh the scripts (cheap; npm is not run again when the lock file is unchanged).
  "$V/setup.sh" "$tools" || exit 1
}

case "$what" in
  setup)
    exec "$V/setup.sh" "$tools"
    ;;
  offline)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/ibrl-npm-offline-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    out=$(npm_config_registry=http://127.0.0.1:9/ npm_config_fetch_retries=0 npm_config_cache="$tmp/cache" \
          timeout 120 "$V/setup.sh" "$tmp/tools" 2>&1); rc=$?
    printf '%s\n' "$out" | sed 's/^/  | /'
    if [ $rc -ne 0 ] && grep -q "registry (http://127.0.0.1:9/) is unreachable" <<<"$out"; then
      echo "1 passed, 0 failed (unreachable registry: setup fails with exit $rc and says so)"
    else
      echo "0 passed, 1 failed (wanted a nonzero exit naming the unreachable registry; got exit $rc)"
      exit 1
    fi
    ;;
  render)
    exec "$V/render.sh" --check
    ;;
  validate)
    need_tools
    rc=0
    node "$tools/validate-k8s.mjs" "$R/dev.yaml" || rc=1
    # prod's token Secret is created by hand (deploy/k8s/overlays/prod/kustomization.yaml).
    node "$tools/validate-k8s.mjs" --external-secret ibrl-token "$R/prod.yaml" || rc=1
    for o in "$SRC"/deploy/k8s/overlays/*/; do
      [ -f "$R/$(basename "$o").yaml" ] || { echo "FAIL overlay $(basename "$o") has no committed render (HINT: deploy/validate/render.sh)"; rc=1; }
    done
    exit $rc
    ;;
  flags)
    need_tools
    exec node "$tools/check-flags.mjs" --bin-dir "$BIN" "$R/dev.yaml" "$R/prod.yaml"
    ;;
  dockerfile)
    need_tools
    exec "$V/check-dockerfile.sh" "$SRC/deploy/docker/Dockerfile" "$tools" "$SRC" "$BIN"
    ;;
  negative)
    need_tools
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/ibrl-deploy-neg-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    pass=0 fail=0
    # mutant <tool> <sed expression> <expected message regex>: the mutants of each tool are
    # collected and checked in one run of that tool (one node and tsc start-up, not forty).
    declare -A files desc re
    n=0
    mutant() {
      local tool=$1 expr=$2 want=$3 f="$tmp/m$n.yaml"
      sed -e "$expr" "$R/dev.yaml" >"$f"
      if cmp -s "$R/dev.yaml" "$f"; then echo "  FAIL mutation '$expr' changed nothing (stale test?)"; fail=$((fail + 1)); return; fi
      files[$tool]+="$f "
      desc[$f]=$expr
      re[$f]=$want
      n=$((n + 1))
    }
    # judge <tool> <command...>: runs the tool once over its mutants; its output has one block
    # per file, closed by "<file>: N passed, N failed" (in argument order).
    judge() {
      local tool=$1; shift
      local list i=0 b
      read -r -a list <<<"${files[$tool]}"
      "$@" "${list[@]}" >"$tmp/$tool.out" 2>&1
      rm -f "$tmp"/"$tool"-block*.out
      awk -v p="$tmp/$tool-block" '{ print > (p k ".out") } /\.yaml: [0-9]+ passed, [0-9]+ failed$/ { close(p k ".out"); k++ }' k=0 "$tmp/$tool.out"
      for f in "${list[@]}"; do
        b="$tmp/$tool-block$i.out"
        i=$((i + 1))
        if [ -f "$b" ] && grep -q "^$f: [0-9]* passed, [1-9][0-9]* failed$" "$b" && grep -Eq -- "${re[$f]}" "$b"; then
          echo "  PASS $tool catches '${desc[$f]}'"; pass=$((pass + 1))
        else
          echo "  FAIL $tool missed '${desc[$f]}' (wanted a failure matching /${re[$f]}/):"
          [ -f "$b" ] && tail -4 "$b" | sed 's/^/    | /'
          fail=$((fail + 1))
        fi
      done
    }
    # Schema, unknown fields, types, enums (layers 1-3).
    mutant validate 's/terminationGracePeriodSeconds: 60/terminationGracePeriodSecond: 60/' "TS2353.*terminationGracePeriodSecond"
    mutant validate 's/readinessProbe:/readinessprobe:/' "TS2353.*readinessprobe"
    mutant validate 's/protocol: TCP/protocol: TCPX/' "TCPX"
    mutant validate '0,/  replicas: 1$/s//  replicas: "one"/' "replicas must be integer"
    mutant validate 's/sshAuthMountPath:/sshAuthMountPth:/' "MPIJob schema: /spec must NOT have additional properties \(sshAuthMountPth\)"
    mutant validate 's/runAsUser: 10001/runAsUser: "10001"/' "Worker template: .*runAsUser must be integer"
    mutant validate 's/restartPolicy: OnFailure/restartPolicy: Always/' "restartPolicy"
    mutant validate 's/^kind: PodDisruptionBudget/kind: PodDisruptionBudgt/' "unknown apiVersion/kind"
    # Cross-references and counts (layer 4).
    mutant validate '0,/  replicas: 1$/s//  replicas: 2/' "REPLAY_SHARDS=1 but StatefulSet replay has replicas 2"
    mutant validate 's/NUM_ACTORS: "2"/NUM_ACTORS: "3"/' "NUM_ACTORS=3 but StatefulSet actor has replicas 2"
    mutant validate 's/REPLAY_LIST: replay-0.replay:50051/REPLAY_LIST: replay-0.replay:50052/' "REPLAY_LIST entry 0"
    mutant validate 's/slotsPerWorker: 2/slotsPerWorker: 1/' "LEARNER_RANKS=2 but MPIJob learner has 1 workers x 1 slots"
    mutant validate 's/port: 50051$/port: 50052/' "readinessProbe gRPC port 50052 is not a containerPort"
    mutant validate 's/clusterIP: None/clusterIP: 10.0.0.1/' "not headless"
    mutant validate 's/image: localhost:5000\/ibrl:dev/image: ibrl-image/' "image placeholder 'ibrl-image' not replaced"
    mutant validate 's/\$(TASK)/$(TASKS)/' "\\\$\(TASKS\) is not defined"
    mutant validate 's/"\$DEMO_EPISODES"/"$DEMO_EPISODE"/' "the script uses \\\$DEMO_EPISODE"
    mutant validate '0,/name: ibrl-hparams-/s//name: ibrl-hparam-/' "ConfigMap 'ibrl-hparams-.*' is not in this render"
    mutant validate 's/claimName: ibrl-shared/claimName: ibrl-sharde/' "PVC 'ibrl-sharde'"
    mutant validate 's/mountPath: \/tmp/mountPath: \/tmp\n          name: temp/' "YAML"
    mutant validate 's/- name: IBRL_LEARNER_TOKEN/- name: IBRL_LEARNER_TOKN/' "mpirun -x IBRL_LEARNER_TOKEN exports a variable the container does not set"
    mutant validate '/^kind: PodDisruptionBudget/,/^---/s/app.kubernetes.io\/name: replay/app.kubernetes.io\/name: replya/' "matches no workload"
    # Flags against the binaries' --help.
    mutant flags 's/- --ckpt-period/- --checkpoint-period/' "ibrl-replay does not accept --checkpoint-period"
    mutant flags 's/- --actor-id/- --actorid/' "ibrl-actor does not accept --actorid"
    mutant flags 's/--publish-every "/--publish-evry "/' "ibrl-learner does not accept --publish-evry"
    mutant flags 's/--n-stack/--nstack/' "ibrl-il train does not accept --nstack"
    mutant flags 's/--stack "\$FRAME_STACK"/--stacks "$FRAME_STACK"/' "ibrl-replayctl import-demos does not accept --stacks"
    mutant flags 's/name: IBRL_ACTOR_TOKEN/name: IBRL_ACTOR_TOKN/' "env IBRL_ACTOR_TOKN means --tokn"
    mutant flags 's/name: IBRL_REPLAY_TOKEN/name: IBRL_LEARNER_TOKEN/' "is for an ibrl learner binary"
    judge validate node "$tools/validate-k8s.mjs"
    judge flags node "$tools/check-flags.mjs" --bin-dir "$BIN"
    # Without the component's kustomizeconfig.yaml, kustomize leaves the MPIJob's ConfigMap and
    # Secret names without their hash suffix: the validator must see that (needs kubectl).
    if command -v kubectl >/dev/null 2>&1; then
      cp -r "$SRC/deploy/k8s" "$tmp/k8s"
      sed -i '/^configurations:/,/kustomizeconfig.yaml/d' "$tmp/k8s/components/learner-mpijob/kustomization.yaml"
      if kubectl kustomize "$tmp/k8s/overlays/dev" >"$tmp/nocfg.yaml" 2>"$tmp/nocfg.err"; then
        out=$(node "$tools/validate-k8s.mjs" "$tmp/nocfg.yaml" 2>&1); rc=$?
        # (kustomize v5.5 replaces images inside any containers[] even without it; names it does not.)
        for re in "MPIJob/learner: Launcher container 'launcher': envFrom ConfigMap 'ibrl-hparams' is not in this render" \
                  "MPIJob/learner: Launcher container 'launcher': env IBRL_LEARNER_TOKEN uses Secret 'ibrl-token', which is not in this render"; do
          if [ $rc -eq 1 ] && grep -Fq -- "$re" <<<"$out"; then echo "  PASS no kustomizeconfig.yaml caught: $re"; pass=$((pass + 1))
          else echo "  FAIL no kustomizeconfig.yaml missed: $re (exit $rc)"; fail=$((fail + 1)); fi
        done
      else
        echo "  FAIL kubectl kustomize of the dev overlay without kustomizeconfig.yaml: $(cat "$tmp/nocfg.err")"; fail=$((fail + 1))
      fi
    else
      echo "  note: kubectl not found: the kustomizeconfig.yaml regression check is skipped"
    fi
    # The Dockerfile checks: one broken copy carrying every mutation, each finding expected.
    df="$SRC/deploy/docker/Dockerfile"
    sed -e 's/^USER 10001:10001/USER root/' -e 's/^CMD .*/CMD ibrl-replay --help/' \
        -e 's/^ENTRYPOINT .*/ENTRYPOINT ["ibrl-replay"]/' -e 's/libmujoco2.2.2/libmujoco9/' \
        -e 's/--from=build/--from=bulid/' -e 's| /build/bin/ibrl-bench||' -e 's/^WORKDIR \/src/RUNN true\nWORKDIR \/src/' \
        -e '0,/^FROM debian:bookworm-slim/s//FROM debian/' "$df" >"$tmp/Dockerfile"
    out=$("$V/check-dockerfile.sh" "$tmp/Dockerfile" "$tools" "$SRC" "$BIN" 2>&1); rc=$?
    for re in "dockerfile-utils lint: .*Unknown instruction: RUNN" "dockerfilelint: " "final USER is root" \
              "CMD is shell form" "ENTRYPOINT does not run tini" "COPY --from=bulid names no earlier stage" \
              "ibrl-bench .* is not built with --target and copied" "apt packages unknown to this Debian: libmujoco9" \
              "FROM debian is not debian:bookworm" \
              "ibrl-learner needs libmujoco.so.2.2.2 from libmujoco2.2.2, which the runtime stage does not install"; do
      if [ $rc -eq 1 ] && grep -Eq -- "^FAIL $re" <<<"$out"; then echo "  PASS dockerfile check catches /$re/"; pass=$((pass + 1))
      else echo "  FAIL dockerfile check missed /$re/ (exit $rc)"; fail=$((fail + 1)); fi
    done
    echo "$pass passed, $fail failed"
    [ $fail -eq 0 ]
    ;;
  *)
    echo "deploy_check.sh: unknown check '$what' (HINT: setup offline render validate negative flags dockerfile)" >&2
    exit 2
    ;;
esac
