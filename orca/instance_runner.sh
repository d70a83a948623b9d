#!/bin/bash
# ORCA's instance runner (orca/instance_runner.sh, docs/instance-contract.md).
#
# Static: everything about one pod is in the runner document given as $1 (`runner.json`, the
# `RunnerDocument` model of orca/instance_contract.py), which the start command writes next to
# this script. The runner prepares the pod's volumes, pulls each image, runs the init containers
# one after another (restarting a failed one unless restartPolicy is Never), then starts the app
# containers, each followed by its own supervisor that restarts it per restartPolicy with the
# kubelet's back-off (reported as waiting/CrashLoopBackOff; never `docker run --restart`), and
# reports every container state change as one JSON line to the status log group (stream
# <pod-uid>). The stop command touches $ORCA_DIR/stopping and sends SIGTERM to this process
# only: nothing more starts, a back-off is cut short, and the supervisors report how the stopped
# containers ended before the runner exits. Secrets are fetched from SSM here and reach
# the runtime through the environment, never argv. Each report is signed with the pod's status
# key (HMAC-SHA256, the SSM parameter statusKeyParameter): ORCA ignores a report without the
# right signature. Secrets Manager secrets (secretsManagerSecrets) are fetched once, before any
# container starts, with the temporary credentials of the SSM parameter
# secretsManagerCredentialsParameter (base64 of their JSON; passed to the AWS CLI in its
# environment, never argv) and
# held in memory; a secret that cannot be read fails the pod's first containers with Error.
# Needs bash, jq, openssl and the AWS CLI.
set -uo pipefail

ORCA_DOC=${1:?usage: instance_runner.sh RUNNER_JSON}

orca_field() {  # jq filter -> raw value
  jq -r "$1" "$ORCA_DOC"
}

orca_raw() {  # jq filter -> the string as it is (no newline added)
  jq -j "$1" "$ORCA_DOC"
}

orca_list() {  # jq filter yielding strings -> NUL-separated, byte-exact (values may hold newlines)
  jq -j "$1 | ., \"\\u0000\"" "$ORCA_DOC"
}

AWS_DEFAULT_REGION=$(orca_field .region)
export AWS_DEFAULT_REGION
ORCA_POD_UID=$(orca_field .podUID)
ORCA_STATUS_LOG_GROUP=$(orca_field .statusLogGroup)
ORCA_DIR=$(orca_field .podDir)
ORCA_RESTART_POLICY=$(orca_field .restartPolicy)
ORCA_STATUS_KEY_PARAMETER=$(orca_field '.statusKeyParameter // empty')
ORCA_STATUS_KEY=""
ORCA_SM_CREDENTIALS_PARAMETER=$(orca_field '.secretsManagerCredentialsParameter // empty')
declare -A ORCA_SM_VALUES=()  # secret ARN -> its SecretString, JSON-encoded
ORCA_RUNTIME=docker
command -v docker >/dev/null 2>&1 || ORCA_RUNTIME=nerdctl
ORCA_HOST_IP=""
ORCA_NEURON_DEVICES=()
mkdir -p "$ORCA_DIR/volumes"

# One JSON event per container state change (ContainerStateEvent).
orca_report() {  # container init(true|false) state reason [exitCode [backOffSeconds]]
  local at ms event signature
  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ms=$(date +%s%3N)
  event=$(jq -cn --arg uid "$ORCA_POD_UID" --arg container "$1" --argjson init "$2" \
    --arg state "$3" --arg reason "$4" --argjson code "${5:-null}" \
    --argjson backoff "${6:-null}" --arg at "$at" \
    '{podUID: $uid, container: $container, init: $init, state: $state, reason: $reason,
      exitCode: $code, backOffSeconds: $backoff, at: $at}')
  if [ -n "$ORCA_STATUS_KEY" ]; then  # {report: the event's text, signature: its HMAC}
    signature=$(printf '%s' "$event" \
      | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$ORCA_STATUS_KEY" -r | cut -d' ' -f1)
    event=$(jq -cn --arg report "$event" --arg signature "$signature" \
      '{report: $report, signature: $signature}')
  fi
  aws logs create-log-stream --log-group-name "$ORCA_STATUS_LOG_GROUP" \
    --log-stream-name "$ORCA_POD_UID" >/dev/null 2>&1 || true
  aws logs put-log-events --log-group-name "$ORCA_STATUS_LOG_GROUP" \
    --log-stream-name "$ORCA_POD_UID" \
    --log-events "$(jq -cn --argjson ms "$ms" --arg message "$event" \
      '[{timestamp: $ms, message: $message}]')" >/dev/null \
    || echo "orca: could not report $1 $3" >&2
}

orca_secret() {  # SSM SecureString parameter name
  aws ssm get-parameter --with-decryption --name "$1" --query Parameter.Value --output text
}

orca_sm_fetch() {  # every secret of secretsManagerSecrets, with the pod's temporary credentials
  local credentials arn value
  local -a arns
  credentials=$(orca_secret "$ORCA_SM_CREDENTIALS_PARAMETER" | base64 -d) || return 1
  mapfile -d '' -t arns < <(orca_list '.secretsManagerSecrets[]')
  for arn in "${arns[@]}"; do
    value=$(
      AWS_ACCESS_KEY_ID=$(printf '%s' "$credentials" | jq -r .AccessKeyId) \
      AWS_SECRET_ACCESS_KEY=$(printf '%s' "$credentials" | jq -r .SecretAccessKey) \
      AWS_SESSION_TOKEN=$(printf '%s' "$credentials" | jq -r .SessionToken) \
        aws secretsmanager get-secret-value --secret-id "$arn" --query SecretString --output json
    ) || { echo "orca: could not read secret $arn" >&2; return 1; }
    ORCA_SM_VALUES[$arn]=$value
  done
}

orca_sm_value() {  # ARN [json-key]: the secret's string, or that key of it, exactly
  printf '%s' "${ORCA_SM_VALUES[$1]:-null}" | jq -j --arg key "${2:-}" '
    if type != "string" then error("not fetched")
    elif $key == "" then .
    else fromjson | if type == "object" and has($key) then .[$key] else error("no key") end
      | if type == "string" then . else tojson end
    end'
}

orca_sm_check() {  # every reference of the document resolves (a missing JSON key fails here)
  local -a refs
  local r
  mapfile -d '' -t refs < <(orca_list '[.. | objects | .secretsManager? // empty]
    | unique | .[] | .arn, (.jsonKey // "")')
  for ((r = 0; r < ${#refs[@]}; r += 2)); do
    orca_sm_value "${refs[r]}" "${refs[r + 1]}" >/dev/null 2>&1 \
      || { echo "orca: secret ${refs[r]} has no JSON key '${refs[r + 1]}'" >&2; return 1; }
  done
}

orca_fail_start() {  # the pod cannot start: its first containers end in Error
  local count c
  count=$(orca_field '.initContainers | length')
  if [ "$count" -gt 0 ]; then
    orca_report "$(orca_field '.initContainers[0].name')" true terminated Error 1
  else
    count=$(orca_field '.containers | length')
    for ((c = 0; c < count; c++)); do
      orca_report "$(orca_field ".containers[$c].name")" false terminated Error 1
    done
  fi
  exit 1
}

orca_block_device() {  # volumeId deviceName: the device of an attached EBS volume, or 1
  local serial=${1/-/} waited
  for ((waited = 0; waited < 60; waited++)); do
    # Nitro: an NVMe device whose serial is the volume ID without its dash; Xen: the name
    # AttachVolume was given, or its xvd alias.
    for candidate in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$serial" "$2" \
      "/dev/xvd${2#/dev/sd}"; do
      if [ -b "$candidate" ]; then
        readlink -f "$candidate"
        return 0
      fi
    done
    sleep 1
  done
  return 1
}

orca_block_devices() {  # find, format once, and mount every attached EBS volume
  local count d volume device fs_type mount_point options
  count=$(orca_field '.blockDevices // [] | length')
  for ((d = 0; d < count; d++)); do
    volume=$(orca_field ".blockDevices[$d].volumeId")
    fs_type=$(orca_field ".blockDevices[$d].fsType")
    mount_point=$(orca_field ".blockDevices[$d].mountPoint")
    if ! device=$(orca_block_device "$volume" "$(orca_field ".blockDevices[$d].deviceName")"); then
      echo "orca: volume $volume is not attached to this instance" >&2
      return 1
    fi
    if ! blkid "$device" >/dev/null 2>&1; then  # a new volume: its filesystem, once
      mkfs -t "$fs_type" "$device" >/dev/null || {
        echo "orca: could not create a $fs_type filesystem on $volume" >&2
        return 1
      }
    fi
    options=defaults
    [ "$(orca_field ".blockDevices[$d].readOnly")" = true ] && options=ro
    mkdir -p "$mount_point"
    if ! mountpoint -q "$mount_point"; then
      mount -o "$options" "$device" "$mount_point" || {
        echo "orca: could not mount $volume at $mount_point" >&2
        return 1
      }
    fi
    echo "$mount_point" >>"$ORCA_DIR/mounts"  # the stop command unmounts these
  done
}

orca_login() {  # image: log in to ECR registries with the instance profile
  local registry
  if [[ $1 =~ ^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/ ]]; then
    registry="${1%%/*}"
    aws ecr get-login-password --region "${BASH_REMATCH[1]}" \
      | "$ORCA_RUNTIME" login --username AWS --password-stdin "$registry" >/dev/null
  fi
}

orca_sleep() {  # seconds: a sleep the stop command's SIGTERM cuts short
  sleep "$1" &
  wait "$!" 2>/dev/null || kill "$!" 2>/dev/null
  return 0
}

orca_backoff() {  # the kubelet's: 10 s doubling to 300 s; the delay is in $delay
  orca_sleep "$delay"
  delay=$((delay * 2 > 300 ? 300 : delay * 2))
}

orca_restart_delay() {  # exits in a row -> seconds before the restart (restart_back_off)
  local delay=0 k
  for ((k = 2; k <= $1; k++)); do
    delay=$((delay == 0 ? 10 : (delay * 2 > 300 ? 300 : delay * 2)))
  done
  echo "$delay"
}

orca_pull() {  # container init image: pull, retrying with backoff like the kubelet
  local delay=10
  orca_report "$1" "$2" waiting PullingImage
  orca_login "$3" || true
  until "$ORCA_RUNTIME" pull "$3"; do
    orca_report "$1" "$2" waiting ImagePullBackOff
    orca_backoff
  done
}

orca_stopped() {  # the stop command ran
  [ -e "$ORCA_DIR/stopping" ]
}

orca_stopping() {  # the stop command ran: start nothing more, let the supervisors report
  if orca_stopped; then
    until wait; do :; done  # SIGTERM interrupts a wait; keep waiting for the supervisors
    exit 0
  fi
}

orca_start() {  # group index name init: one run of one container, to its end; exit code in $code
  local reason
  "$ORCA_RUNTIME" rm -f "orca_$3" >/dev/null 2>&1 || true
  if ! orca_run "$1" "$2" >/dev/null; then
    code=128
    orca_report "$3" "$4" terminated Error "$code"
    return
  fi
  orca_report "$3" "$4" running Started
  code=$("$ORCA_RUNTIME" wait "orca_$3" 2>/dev/null) || code=""
  [[ $code =~ ^[0-9]+$ ]] || code=1
  reason=Completed
  [ "$code" != 0 ] && reason=Error
  orca_stopped && reason=Killed
  [ "$("$ORCA_RUNTIME" inspect -f '{{.State.OOMKilled}}' "orca_$3" 2>/dev/null)" = true ] \
    && reason=OOMKilled
  orca_report "$3" "$4" terminated "$reason" "$code"
}

orca_supervise() {  # group index name init policy: run the container until the policy ends it
  local exits=0 started delay code
  trap : TERM  # (in a background supervisor too) cuts a back-off short, never a `wait`
  while ! orca_stopped; do
    started=$SECONDS
    orca_start "$1" "$2" "$3" "$4"
    orca_stopped && return 0
    case $5 in
      Never) return "$code" ;;
      OnFailure) [ "$code" = 0 ] && return 0 ;;
    esac
    ((SECONDS - started >= 600)) && exits=0  # it ran 10 minutes: the back-off starts over
    exits=$((exits + 1))
    delay=$(orca_restart_delay "$exits")
    if ((delay > 0)); then
      orca_report "$3" "$4" waiting CrashLoopBackOff "" "$delay"
      orca_sleep "$delay"
    fi
  done
}

orca_volumes() {  # create every volume's directory and write its files
  local v f path file mode count files
  count=$(orca_field '.volumes | length')
  for ((v = 0; v < count; v++)); do
    path=$(orca_field ".volumes[$v].path")
    mkdir -p "$path"
    files=$(orca_field ".volumes[$v].files | length")
    for ((f = 0; f < files; f++)); do
      file=$(orca_field ".volumes[$v].files[$f].path")
      mode=$(orca_field ".volumes[$v].files[$f].mode // empty")
      mkdir -p "$(dirname "$file")"
      if [ "$(orca_field ".volumes[$v].files[$f] | has(\"secretsManager\")")" = true ]; then
        (umask 077; orca_sm_value "$(orca_field ".volumes[$v].files[$f].secretsManager.arn")" \
          "$(orca_field ".volumes[$v].files[$f].secretsManager.jsonKey // empty")" >"$file")
      elif [ "$(orca_field ".volumes[$v].files[$f] | has(\"secretParameter\")")" = true ]; then
        (umask 077; orca_secret "$(orca_field ".volumes[$v].files[$f].secretParameter")" \
          | base64 -d >"$file")
      elif [ "$(orca_field ".volumes[$v].files[$f].hostIP // false")" = true ]; then
        printf '%s' "$ORCA_HOST_IP" >"$file"
      else
        orca_raw ".volumes[$v].files[$f].content" >"$file"
      fi
      [ -n "$mode" ] && chmod "$(printf '%o' "$mode")" "$file"
    done
    if [ "$(orca_field ".volumes[$v].worldReadable // false")" = true ]; then
      chmod -R a+rX "$path"
    fi
  done
}

orca_run() {  # group(initContainers|containers) index: start one container (detached)
  local at=".$1[$2]" e count name value
  local -a options arguments devices=()
  mapfile -d '' -t options < <(orca_list "$at.runArguments[]")
  mapfile -d '' -t arguments < <(orca_list "$at.arguments[]")
  [ "$(orca_field "$at.neuronDevices // false")" = true ] && devices=("${ORCA_NEURON_DEVICES[@]}")
  count=$(orca_field "$at.env | length")
  (
    for ((e = 0; e < count; e++)); do
      name=$(orca_field "$at.env[$e].name")
      if [ "$(orca_field "$at.env[$e] | has(\"secretsManager\")")" = true ]; then
        value=$(orca_sm_value "$(orca_field "$at.env[$e].secretsManager.arn")" \
          "$(orca_field "$at.env[$e].secretsManager.jsonKey // empty")") || exit 1
      elif [ "$(orca_field "$at.env[$e] | has(\"secretParameter\")")" = true ]; then
        value=$(orca_secret "$(orca_field "$at.env[$e].secretParameter")") || exit 1
      elif [ "$(orca_field "$at.env[$e].hostIP // false")" = true ]; then
        value=$ORCA_HOST_IP
      else
        value=$(orca_raw "$at.env[$e].value")
      fi
      export "$name=$value"
    done
    exec "$ORCA_RUNTIME" run -d "${options[@]}" "${devices[@]}" \
      "$(orca_field "$at.image")" "${arguments[@]}"
  )
}

# -- usage figures (docs/stats.md): StatsD gauges to the CloudWatch agent, tagged with the pod --
ORCA_USAGE_DIMENSION=$(orca_field '.usageMetrics.podDimension // empty')
ORCA_CGROUP_ROOT=${ORCA_CGROUP_ROOT:-/sys/fs/cgroup}
ORCA_NET_ROOT=${ORCA_NET_ROOT:-/sys/class/net}

orca_gauge() {  # metric value: one gauge for the agent's StatsD listener
  printf '%s:%s|g|#Pod:%s\n' "$1" "$2" "$ORCA_USAGE_DIMENSION" \
    >/dev/udp/127.0.0.1/8125 2>/dev/null || true
}

orca_usage_agent() {  # install the agent's configuration and (re)start it; 1 without an agent
  local ctl=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl
  [ -x "$ctl" ] || dnf install -y -q amazon-cloudwatch-agent >/dev/null 2>&1 || return 1
  [ -x "$ctl" ] || return 1
  orca_raw '.usageMetrics.agentConfig' >"$ORCA_DIR/cloudwatch-agent.json"
  "$ctl" -a fetch-config -m ec2 -s -c "file:$ORCA_DIR/cloudwatch-agent.json" >/dev/null
}

orca_usage_sample() {  # previous_usec previous_ns: one round of gauges; echoes "usec ns"
  local id pid cg usec=0 ws=0 inactive now rx=0 tx=0 dev fs util
  for id in $("$ORCA_RUNTIME" ps -q --filter "label=orca.research/pod-uid=$ORCA_POD_UID"); do
    pid=$("$ORCA_RUNTIME" inspect -f '{{.State.Pid}}' "$id" 2>/dev/null) || continue
    cg="$ORCA_CGROUP_ROOT$(cut -d: -f3- "/proc/$pid/cgroup" 2>/dev/null | head -n1)"
    [ -r "$cg/cpu.stat" ] || continue
    usec=$((usec + $(awk '$1 == "usage_usec" {print $2}' "$cg/cpu.stat")))
    inactive=$(awk '$1 == "inactive_file" {print $2}' "$cg/memory.stat" 2>/dev/null)
    ws=$((ws + $(cat "$cg/memory.current") - ${inactive:-0}))
  done
  now=$(date +%s%N)
  orca_gauge cpu_usage_seconds_total "$(awk -v u="$usec" 'BEGIN {printf "%.6f", u / 1e6}')"
  if [ "$2" -gt 0 ] && [ "$now" -gt "$2" ] && [ "$usec" -ge "$1" ]; then
    orca_gauge cpu_usage_cores \
      "$(awk -v u="$((usec - $1))" -v n="$((now - $2))" 'BEGIN {printf "%.6f", u * 1000 / n}')"
  fi
  orca_gauge memory_working_set_bytes "$((ws < 0 ? 0 : ws))"
  for dev in "$ORCA_NET_ROOT"/*; do  # host network: the instance's interfaces are the pod's
    [ "${dev##*/}" = lo ] && continue
    [ -r "$dev/statistics/rx_bytes" ] || continue
    rx=$((rx + $(cat "$dev/statistics/rx_bytes")))
    tx=$((tx + $(cat "$dev/statistics/tx_bytes")))
  done
  orca_gauge network_rx_bytes_total "$rx"
  orca_gauge network_tx_bytes_total "$tx"
  read -r -a fs < <(df -B1 --output=used,size "$ORCA_DIR" 2>/dev/null | tail -n1)
  if [ "${#fs[@]}" -eq 2 ]; then
    orca_gauge fs_used_bytes "${fs[0]}"
    orca_gauge fs_capacity_bytes "${fs[1]}"
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used,power.draw --format=csv,noheader,nounits \
      | awk -F', *' '{u += $1; m += $2; p += $3; n++}
          END {if (n) printf "%.2f %.0f %.2f\n", u / n, m * 1048576, p}' \
      | { read -r util memory power && orca_gauge gpu_utilization_percent "$util" \
          && orca_gauge gpu_memory_used_bytes "$memory" && orca_gauge gpu_power_watts "$power"; }
  fi
  if command -v neuron-monitor >/dev/null 2>&1; then
    util=$(timeout 10 neuron-monitor 2>/dev/null | head -n1 | jq -r '[.neuron_runtime_data[]?
      .report.neuroncore_counters.neuroncores_in_use[]?.neuroncore_utilization]
      | if length > 0 then add / length else 0 end')
    [ -n "$util" ] && orca_gauge neuroncore_utilization_percent "$util"
  fi
  echo "$usec $now"
}

orca_any_alive() {  # pid...: one of them still runs
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

orca_usage() {  # supervisor pids: every intervalSeconds while one of them runs
  local interval state="0 0"
  interval=$(orca_field '.usageMetrics.intervalSeconds')
  while orca_any_alive "$@"; do
    # shellcheck disable=SC2086  # two numbers
    state=$(orca_usage_sample $state)
    sleep "$interval"
  done
}

if [ -n "$ORCA_STATUS_KEY_PARAMETER" ]; then
  ORCA_STATUS_KEY=$(orca_secret "$ORCA_STATUS_KEY_PARAMETER") \
    || echo "orca: could not read the status key; reports will be ignored" >&2
fi

if [ -n "$ORCA_SM_CREDENTIALS_PARAMETER" ]; then
  if ! orca_sm_fetch || ! orca_sm_check; then orca_fail_start; fi
fi

orca_block_devices || orca_fail_start

ORCA_SUPERVISORS=()
# The stop command's signal: cut a back-off short (here and in every supervisor), then see
# $ORCA_DIR/stopping.
trap 'kill -TERM "${ORCA_SUPERVISORS[@]}" 2>/dev/null || true' TERM
TOKEN=$(curl -sS -X PUT http://169.254.169.254/latest/api/token \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300" || true)
ORCA_HOST_IP=$(curl -sS -H "X-aws-ec2-metadata-token: $TOKEN" \
  http://169.254.169.254/latest/meta-data/local-ipv4 || hostname -I | cut -d' ' -f1)
for device in /dev/neuron*; do
  [ -e "$device" ] && ORCA_NEURON_DEVICES+=(--device="$device")
done

orca_volumes

# init containers, one after another; a failed one is restarted unless restartPolicy is Never
ORCA_INIT_POLICY=OnFailure
[ "$ORCA_RESTART_POLICY" = Never ] && ORCA_INIT_POLICY=Never
count=$(orca_field '.initContainers | length')
for ((i = 0; i < count; i++)); do
  name=$(orca_field ".initContainers[$i].name")
  orca_pull "$name" true "$(orca_field ".initContainers[$i].image")"
  orca_stopping
  if ! orca_supervise initContainers "$i" "$name" true "$ORCA_INIT_POLICY"; then
    sleep 5
    exit 1  # restartPolicy Never: the pod has failed
  fi
  orca_stopping
done

# app containers, each with its supervisor
count=$(orca_field '.containers | length')
for ((i = 0; i < count; i++)); do
  name=$(orca_field ".containers[$i].name")
  orca_pull "$name" false "$(orca_field ".containers[$i].image")"
  orca_stopping
  orca_supervise containers "$i" "$name" false "$ORCA_RESTART_POLICY" &
  ORCA_SUPERVISORS+=("$!")
done
if [ -n "$ORCA_USAGE_DIMENSION" ]; then
  if orca_usage_agent; then
    orca_usage "${ORCA_SUPERVISORS[@]}" &
  else
    echo "orca: no CloudWatch agent; the pod's usage figures are not published" >&2
  fi
fi
until wait; do :; done  # until every supervisor has ended (SIGTERM interrupts a wait)
