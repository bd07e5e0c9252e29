#!/usr/bin/env bash
# Serve Hark on http://127.0.0.1:8000 (HARK_BIND; after scripts/setup.sh): database migrations,
# the startup check, then the training-queue consumer, gunicorn and, where it is installed,
# nginx in front of gunicorn (deploy/nginx.conf.template: it buffers whole requests, so slow
# clients cannot hold gunicorn's workers; gunicorn then listens on a private unix socket).
# HARK_NGINX=0 serves with gunicorn alone. Ctrl-C (or SIGTERM to this script) stops them all;
# if one dies, scripts/supervise.py restarts it (with backoff) while the others keep serving.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2
bind=${HARK_BIND:-127.0.0.1:8000}

# HARK_NGINX: unset or 1 finds nginx (PATH, /usr/sbin), a path names the binary, 0 goes without.
nginx=""
case "${HARK_NGINX:-1}" in
    0) echo "note: HARK_NGINX=0: gunicorn faces clients alone on $bind; put a buffering proxy" \
            "in front of it (docs/deployment.md)" >&2 ;;
    1) nginx=$(command -v nginx || true)
       [ -n "$nginx" ] || [ ! -x /usr/sbin/nginx ] || nginx=/usr/sbin/nginx ;;
    *) [ ! -x "$HARK_NGINX" ] || nginx=$HARK_NGINX ;;
esac
if [ -z "$nginx" ] && [ "${HARK_NGINX:-1}" != 0 ]; then
    echo "warning: nginx not found, so gunicorn faces clients alone and a few clients that send" \
         "slowly can hold all its workers. Install nginx (scripts/setup.sh does as root:" \
         "apt-get install nginx) or put another buffering proxy in front (docs/deployment.md)." >&2
fi

.venv/bin/flask --app wsgi db upgrade
.venv/bin/flask --app wsgi check          # repairs what a crash left; says how to create the admin

rundir=""
gunicorn_bind=$bind
if [ -n "$nginx" ]; then
    # A private folder for gunicorn's socket, nginx's config, pid and temporary files.
    rundir=$(mktemp -d "${TMPDIR:-/tmp}/hark-run.XXXXXX")
    user_line=""
    if [ "$(id -u)" = 0 ]; then
        # nginx's workers drop root; only their group may enter the folder (and reach the socket).
        group=$(id -gn nobody 2>/dev/null || echo nogroup)
        user_line="user nobody $group;"
        chgrp "$group" "$rundir" && chmod 710 "$rundir"
    fi
    max_mb=${HARK_MAX_UPLOAD_MB:-10}
    detect_mb=${HARK_MAX_DETECT_UPLOAD_MB:-64}
    files=$(ulimit -n)
    [ "$files" != unlimited ] || files=8192
    connections=$(( files > 4160 ? 4096 : files - 64 ))
    sed -e "s|@RUN@|$rundir|g" -e "s|@LISTEN@|$bind|g" -e "s|@USER@|$user_line|g" \
        -e "s|@MAX_BODY@|${max_mb}m|g" -e "s|@MAX_BODY_MB@|$max_mb|g" -e "s|@MAX_DETECT_BODY@|${detect_mb}m|g" -e "s|@CONNECTIONS@|$connections|g" \
        -e "s|@PROXY_TIMEOUT@|$(( ${HARK_TIMEOUT:-60} + 10 ))s|g" \
        deploy/nginx.conf.template > "$rundir/nginx.conf"
    gunicorn_bind="unix:$rundir/gunicorn.sock"
    # The app believes exactly one X-Forwarded-For hop: this nginx (more if set for a proxy in front).
    export HARK_PROXIES=${HARK_PROXIES:-1}
fi

private=()        # with nginx: gunicorn's sockets in the private folder, not shared with others
[ -z "$rundir" ] || private=(--bind "$gunicorn_bind" --control-socket "$rundir/gunicorn.ctl")
programs=(consumer:INT .venv/bin/python -m webapp.training.worker
          ::: gunicorn:TERM .venv/bin/gunicorn -c gunicorn.conf.py "${private[@]}" wsgi:app)
if [ -n "$nginx" ]; then
    programs+=(::: nginx:QUIT "$nginx" -e stderr -p "$rundir" -c "$rundir/nginx.conf")
    echo "Hark: http://$bind (nginx in front of gunicorn on $gunicorn_bind, and the training queue consumer)"
else
    echo "Hark: http://$bind (gunicorn, and the training queue consumer)"
fi
# scripts/supervise.py restarts whichever of them ends (a crashed consumer's job is marked failed
# at once) and stops them all on SIGINT/SIGTERM/SIGHUP, then removes the private folder.
remove=()
[ -z "$rundir" ] || remove=(--remove "$rundir")
exec .venv/bin/python scripts/supervise.py "${remove[@]}" "${programs[@]}"
