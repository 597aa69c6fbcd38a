#!/usr/bin/env bash
# The README's two commands on a truly fresh Debian 12 root, made with debootstrap from Debian's
# package mirrors: nothing installed but what `debootstrap --variant=minbase` installs (no Python),
# PostgreSQL, the rehearsal PostgreSQL and Redis on unused ports (the set-up starts private ones).
# It runs `scripts/test.sh` (the whole suite), then `scripts/up.sh`, checks the console answers and
# that a killed agent comes back, and writes the times to WORKDIR/result.txt. Not part of the suite:
# it takes a while (see docs/operations.md for the last run).
#
#   usage (as root): scripts/check_fresh_debian.sh [WORKDIR]        default WORKDIR /var/tmp/lifetime-fresh-debian
#   DEBIAN_MIRROR=http://deb.debian.org/debian   SKIP_TESTS=1 (only the first command)
#
# The code checked is the commit at HEAD (a clean clone: nothing uncommitted). Everything runs in
# its own PID and mount namespaces: when the check ends, every process it started ends with it.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/var/tmp/lifetime-fresh-debian}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$WORK/root
RESULT=$WORK/result.txt
[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap, chroot and mounts need it)" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port); RH_PORT=$(free_port); RD_PORT=$(free_port); WEB_PORT=$(free_port)
COMMIT=$(git -C "$REPO" rev-parse HEAD)
now() { date +%s; }
elapsed() { echo "$(( $(now) - $1 )) s"; }

mkdir -p "$WORK"
rm -rf "$ROOTFS"
: > "$RESULT"
report() { echo "$*" | tee -a "$RESULT"; }
report "fresh Debian 12 check of commit $COMMIT, $(date -u +%FT%TZ)"

t=$(now)
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1
cat > "$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
SOURCES
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# This workplace reaches PyPI and npm through a TLS-inspecting proxy whose certificate authority
# only its hosts trust: the root gets the host's bundle (FRESH_DEBIAN_CA_BUNDLE, "none" on a plain
# network), also where Debian's update-ca-certificates keeps it when a package installs ca-certificates.
CA_BUNDLE=${FRESH_DEBIAN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
CA_ENV=()
if [ "$CA_BUNDLE" != none ] && [ -f "$CA_BUNDLE" ]; then
  mkdir -p "$ROOTFS/etc/ssl/certs" "$ROOTFS/usr/local/share/ca-certificates"
  cp "$CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
  cp "$CA_BUNDLE" "$ROOTFS/usr/local/share/ca-certificates/host-bundle.crt"
  for name in PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE; do
    CA_ENV+=("$name=/etc/ssl/certs/ca-certificates.crt")
  done
  report "CA bundle of the host copied into the root ($CA_BUNDLE)"
fi
# As in any chroot: packages installed there do not start their services (they would share this
# host's network); the set-up starts its own on the unused ports.
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
report "debootstrap (minbase): $(elapsed "$t"); python3 in the root: $([ -e "$ROOTFS/usr/bin/python3" ] && echo yes || echo none)"

# A clean clone of the committed code, as CI makes one.
git clone -q "$REPO" "$ROOTFS/opt/lifetime"
git -C "$ROOTFS/opt/lifetime" checkout -q "$COMMIT"

cat > "$ROOTFS/opt/check.sh" <<INNER
#!/bin/bash
set -uo pipefail
# A clean environment (env -i): only what a root shell on a fresh machine has.
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/lifetime
export REHEARSAL_DATABASE_URL=postgres://postgres@127.0.0.1:$RH_PORT/postgres
export REDIS_URL=redis://127.0.0.1:$RD_PORT/0
cd /opt/lifetime
now() { date +%s; }
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  t=\$(now)
  REDIS_URL=redis://127.0.0.1:$RD_PORT/15 scripts/test.sh -q -p no:cacheprovider > /opt/test.log 2>&1
  echo "test command: exit \$?, \$(( \$(now) - t )) s; \$(tail -n 1 /opt/test.log)"
  echo "python of .venv: \$(.venv/bin/python --version 2>&1)"
fi
t=\$(now)
PORT=$WEB_PORT scripts/up.sh > /opt/up.log 2>&1 &
for _ in \$(seq 600); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$WEB_PORT/health/ready', timeout=2)" 2>/dev/null && break
  sleep 1
done
echo "first command: console ready after \$(( \$(now) - t )) s"
python3 - <<'PY'
import urllib.request
for path in ("/health/ready", "/login/"):
    with urllib.request.urlopen("http://127.0.0.1:$WEB_PORT" + path, timeout=10) as answer:
        print(f"GET {path}: {answer.status}")
PY
sleep 10
.venv/bin/supervisorctl -c .run/supervisord.conf status | sed 's/^/  /'
victim=\$(.venv/bin/supervisorctl -c .run/supervisord.conf pid agent-production-fe1)
kill -KILL "\$victim"
sleep 8
echo "after SIGKILL of agent-production-fe1 (pid \$victim):"
.venv/bin/supervisorctl -c .run/supervisord.conf status | sed 's/^/  /'
# The demo's own deployments (a Prepare of the large example) finish or are shown in the console.
for _ in \$(seq 90); do grep -q "Demo deployments" /opt/up.log && break; grep -qi "deployed\|finished" /opt/up.log && break; sleep 5; done
tail -n 5 /opt/up.log | sed 's/^/  up.sh: /'
# Commands of the README in a new shell (nothing exported), then the reset.
NEW_SHELL=(env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
"\${NEW_SHELL[@]}" bash -c 'cd /opt/lifetime && python3 manage.py create_service_account fresh-check --deploy-on Test > /tmp/token' \
  && echo "new shell: python3 manage.py create_service_account: ok (token of \$(wc -c < /tmp/token) bytes)" \
  || echo "new shell: python3 manage.py create_service_account: FAILED"
"\${NEW_SHELL[@]}" bash -c 'cd /opt/lifetime && .venv/bin/supervisorctl -c .run/supervisord.conf status | grep -c RUNNING' \
  | sed 's/^/new shell: supervisorctl status, RUNNING processes: /'
t=\$(now)
"\${NEW_SHELL[@]}" bash -c 'cd /opt/lifetime && scripts/reset.sh --no-start' > /opt/reset.log 2>&1 && echo "scripts/reset.sh --no-start: ok, \$(( \$(now) - t )) s" || echo "scripts/reset.sh: FAILED (see /opt/reset.log)"
t=\$(now)
"\${NEW_SHELL[@]}" bash -c 'cd /opt/lifetime && scripts/up.sh' > /opt/up2.log 2>&1 &
for _ in \$(seq 600); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$WEB_PORT/health/ready', timeout=2)" 2>/dev/null && break
  sleep 1
done
echo "up.sh again in a new shell (settings from .data/lifetime.env): ready after \$(( \$(now) - t )) s"
"\${NEW_SHELL[@]}" bash -c 'cd /opt/lifetime && .venv/bin/python manage.py shell -c "from core.models import ServiceAccount; print(ServiceAccount.objects.count())"' 2>/dev/null | tail -n 1 | sed 's/^/service accounts after the reset: /'
echo "installed by the set-up: \$(dpkg-query -W -f='\${binary:Package} ' python3 python3-venv postgresql redis-server chromium nodejs npm 2>/dev/null)"
scripts/stop.sh > /dev/null 2>&1
INNER
chmod +x "$ROOTFS/opt/check.sh"

t=$(now)
# Own PID and mount namespaces: the mounts and every process started inside end with it.
unshare --pid --fork --mount --propagation private bash -c "
  mount -t proc proc '$ROOTFS/proc'
  mount -t sysfs sys '$ROOTFS/sys'
  mount --rbind /dev '$ROOTFS/dev'
  chroot '$ROOTFS' /usr/bin/env -i TERM=dumb SKIP_TESTS='${SKIP_TESTS:-0}' ${CA_ENV[*]} /opt/check.sh
" 2>&1 | tee -a "$RESULT"
report "whole check: $(elapsed "$t") (logs: $ROOTFS/opt/test.log, $ROOTFS/opt/up.log)"
