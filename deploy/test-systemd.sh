#!/usr/bin/env bash
# Switchyard under a real systemd 252 in a container (../shared/notes/systemd-container.md).
# Boots a separate Debian root with systemd-nspawn — never the machine's own root — installs the
# units and release binaries into it, and checks what an operator relies on. Exits non-zero with a
# message on the first failed check. Needs root, systemd-container, mmdebstrap and release
# binaries in .build/release (make test builds them).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "--- $*"; }

cache="$top/.build/systemd-rootfs.tar"
work=$(mktemp -d /tmp/sy-systemd-XXXXXX)
root="$work/root"
name="sy-test-$$"
nspawn_pid=""
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. A root filesystem: Debian bookworm minbase with systemd, cached as a tarball.
if [ ! -f "$cache" ]; then
  mirror=$(sed -n 's/^URIs: *\(http[^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  note "building the container root from $mirror (cached in $cache)"
  mmdebstrap --mode=root --variant=minbase --include=systemd,dbus,libsqlite3-0,libstdc++6,curl,ca-certificates \
    bookworm "$work/build" "$mirror" > "$work/mmdebstrap.log" 2>&1 || { tail -20 "$work/mmdebstrap.log"; fail "mmdebstrap"; }
  tar -C "$work/build" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  rm -rf "$work/build"
fi
mkdir -p "$root"
tar -C "$root" -xf "$cache"

# 2. Install exactly as an operator would, into the container root.
[ -x .build/release/switchyard-supervisor ] || fail "no release binaries: run swift build -c release --static-swift-stdlib first"
make -s install-files DESTDIR="$root" > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "make install-files"; }
token=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
printf '%s\n' "$token" > "$root/etc/switchyard/control-token"
chmod 0600 "$root/etc/switchyard/control-token"
cat > "$root/etc/switchyard/profiles.json" <<'JSON'
{"profiles": [
  {"name": "demo-rpc", "argv": ["/usr/local/bin/switchyard-demo-agent", "rpc"], "mode": "rpc", "capabilities": ["demo"], "max_instances": 3},
  {"name": "demo-oneshot", "argv": ["/usr/local/bin/switchyard-demo-agent", "oneshot"], "mode": "oneshot", "capabilities": ["shell"], "max_instances": 3}
]}
JSON
sed -i 's/^SWITCHYARD_LANE_LIMIT=.*/SWITCHYARD_LANE_LIMIT=3/' "$root/etc/switchyard/switchyard.env"
# A short watchdog for the scheduler, so the watchdog check does not wait 20 s (drop-in, as an operator would).
mkdir -p "$root/etc/systemd/system/switchyard-scheduler.service.d"
printf '[Service]\nWatchdogSec=3s\n' > "$root/etc/systemd/system/switchyard-scheduler.service.d/test.conf"
ln -sf /etc/systemd/system/switchyard.target "$root/etc/systemd/system/multi-user.target.wants/switchyard.target" 2>/dev/null || {
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/switchyard.target "$root/etc/systemd/system/multi-user.target.wants/switchyard.target"
}

# 3. systemd-analyze verify: any output at all is a failure (unknown keys only print warnings).
for unit in switchyard-gate.service switchyard-scheduler.service switchyard-poller.service switchyard-supervisor.service switchyard.target; do
  out=$(systemd-analyze verify --root="$root" "/etc/systemd/system/$unit" 2>&1) || fail "verify $unit: $out"
  [ -z "$out" ] || fail "verify $unit printed: $out"
done
note "systemd-analyze verify: clean"
for unit in gate scheduler poller supervisor; do
  score=$(systemd-analyze security --offline=true --root="$root" "switchyard-$unit.service" 2>/dev/null | sed -n 's/.*exposure level for .*: \([0-9.]*\).*/\1/p')
  limit=2.0; [ "$unit" = supervisor ] && limit=4.0
  awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s != "" && s <= l) }' || fail "exposure of switchyard-$unit is $score (limit $limit)"
  note "exposure switchyard-$unit: $score (limit $limit)"
done

# 4. Boot it.
setsid timeout --kill-after=15 900 systemd-nspawn -D "$root" -M "$name" --boot --register=no --keep-unit \
  --private-network --link-journal=no --console=read-only > "$work/console.log" 2>&1 < /dev/null &
nspawn_pid=$!
leader=""
host_pidns=$(readlink /proc/self/ns/pid)
descendants() {  # all descendants of $1, breadth first
  local queue="$1" next p
  while [ -n "$queue" ]; do
    next=""
    for p in $queue; do
      for c in $(cat /proc/$p/task/*/children 2>/dev/null); do echo "$c"; next="$next $c"; done
    done
    queue="$next"
  done
}
for _ in $(seq 1 300); do
  for p in $(descendants "$nspawn_pid"); do
    if [ "$(cat /proc/$p/comm 2>/dev/null)" = systemd ] && [ "$(readlink /proc/$p/ns/pid)" != "$host_pidns" ]; then leader=$p; break; fi
  done
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { tail -20 "$work/console.log"; fail "container did not boot"; }
ct() { nsenter -t "$leader" -a "$@"; }
for _ in $(seq 1 300); do
  state=$(ct systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.2
done
note "container systemd: $state"

# 5. Every unit reaches active through READY=1 (Type=notify: active means READY was received).
for unit in switchyard-supervisor switchyard-gate switchyard-scheduler switchyard-poller; do
  for _ in $(seq 1 150); do [ "$(ct systemctl is-active $unit 2>/dev/null)" = active ] && break; sleep 0.2; done
  [ "$(ct systemctl is-active $unit)" = active ] || { ct journalctl -u $unit --no-pager | tail -25; fail "$unit is not active"; }
  [ "$(ct systemctl show -p Type --value $unit)" = notify ] || fail "$unit is not Type=notify"
done
note "all four units active (READY=1)"

api() { ct curl -sS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
base=http://127.0.0.1:8787
api "$base/control/api/status" | grep -q '"maintenance_mode":true' || fail "a production database must start in maintenance mode"
api -d '{"resumed_by":"test","maintenance_mode":false}' "$base/control/resume" > /dev/null
api -d '{"auto_dispatch":true,"live_dispatch_enabled":true,"requested_by":"test"}' "$base/control/api/flags" > /dev/null
api "$base/control/api/status" | grep -q '"dispatch_blockers":\["no_queued_tasks"\]' || fail "dispatch still blocked after resume: $(api $base/control/api/status)"

# 6. A SIGSTOPped component is killed by the watchdog and restarted.
pid=$(ct systemctl show -p MainPID --value switchyard-scheduler)
restarts=$(ct systemctl show -p NRestarts --value switchyard-scheduler)
ct /bin/sh -c "kill -STOP $pid"
for _ in $(seq 1 200); do
  now=$(ct systemctl show -p NRestarts --value switchyard-scheduler)
  [ "$now" -gt "$restarts" ] && [ "$(ct systemctl is-active switchyard-scheduler)" = active ] && break
  sleep 0.1
done
[ "$(ct systemctl show -p NRestarts --value switchyard-scheduler)" -gt "$restarts" ] || fail "the watchdog did not restart a stopped scheduler"
ct journalctl -u switchyard-scheduler --no-pager | grep -q -i "watchdog" || fail "no watchdog message in the journal"
note "SIGSTOP -> watchdog restart (NRestarts $restarts -> $(ct systemctl show -p NRestarts --value switchyard-scheduler))"

# 7. Restarting gate, scheduler and poller one by one leaves running agents alone; tasks complete.
ids=""
for i in 1 2 3; do
  id=$(api -d "{\"prompt\":\"long job $i @work=4000 @progress=8 @stderr=agent-says-hello-$i\",\"lane\":\"l$i\",\"capabilities\":[\"demo\"]}" "$base/control/api/tasks" \
    | sed -n 's/.*"task":{[^}]*"id":\([0-9]*\).*/\1/p; s/.*"id":\([0-9]*\),"idempotency_key".*/\1/p' | head -1)
  [ -n "$id" ] || fail "intake failed"
  ids="$ids $id"
done
agents_before=""
for _ in $(seq 1 100); do
  agents_before=$(api "$base/control/api/agents" | grep -o '"pid":[0-9]*' | sort | tr '\n' ' ')
  [ "$(echo "$agents_before" | wc -w)" -ge 3 ] && break
  sleep 0.1
done
[ "$(echo "$agents_before" | wc -w)" -ge 3 ] || fail "agents did not start: $(api $base/control/api/agents)"
supervisor_pid=$(ct systemctl show -p MainPID --value switchyard-supervisor)
for unit in switchyard-gate switchyard-scheduler switchyard-poller; do
  ct systemctl restart $unit
  [ "$(ct systemctl is-active $unit)" = active ] || fail "$unit did not come back"
done
[ "$(ct systemctl show -p MainPID --value switchyard-supervisor)" = "$supervisor_pid" ] || fail "the supervisor was restarted"
for _ in $(seq 1 50); do curl_ok=$(api "$base/healthz" 2>/dev/null | grep -c '"ok":true' || true); [ "$curl_ok" = 1 ] && break; sleep 0.1; done
agents_after=$(api "$base/control/api/agents" | grep -o '"pid":[0-9]*' | sort | tr '\n' ' ')
[ "$agents_before" = "$agents_after" ] || fail "agents changed across component restarts: [$agents_before] -> [$agents_after]"
note "restarted gate, scheduler, poller: the same agents ($agents_after) kept running"
for id in $ids; do
  for _ in $(seq 1 300); do api "$base/control/api/tasks/$id" | grep -q '"status":"succeeded"' && break; sleep 0.1; done
  api "$base/control/api/tasks/$id" | grep -q '"status":"succeeded"' || fail "task $id did not succeed: $(api $base/control/api/tasks/$id | head -c 600)"
done
note "tasks$ids succeeded"

# 8. journalctl TASK_ID=<id> shows the task's life across components, the agent's stderr included.
first=$(echo $ids | cut -d' ' -f1)
lines=$(ct journalctl TASK_ID=$first -o json --no-pager)
for who in switchyard-gate switchyard-scheduler switchyard-poller switchyard-supervisor; do
  echo "$lines" | grep -q "\"SYSLOG_IDENTIFIER\":\"$who\"" || fail "journalctl TASK_ID=$first has nothing from $who"
done
echo "$lines" | grep -q "agent-says-hello-1" || fail "the agent's stderr is not in the journal under TASK_ID=$first"
note "journalctl TASK_ID=$first: gate, scheduler, poller, supervisor and the agent's stderr"

# 9. Stopping switchyard.target leaves no process behind.
ct systemctl stop switchyard.target
leader_ns=$(readlink /proc/$leader/ns/pid)
for _ in $(seq 1 100); do
  left=""
  for p in /proc/[0-9]*; do
    [ "$(readlink $p/ns/pid 2>/dev/null)" = "$leader_ns" ] || continue
    case "$(cat $p/comm 2>/dev/null)" in switchyard*) left="$left ${p#/proc/}";; esac
  done
  [ -z "$left" ] && break
  sleep 0.1
done
[ -z "$left" ] || fail "processes left after stopping switchyard.target:$left"
for unit in switchyard-supervisor switchyard-gate switchyard-scheduler switchyard-poller; do
  [ "$(ct systemctl is-active $unit || true)" = inactive ] || fail "$unit is not inactive after stop"
done
note "switchyard.target stopped: no process left"
echo "systemd container test: all checks passed"
