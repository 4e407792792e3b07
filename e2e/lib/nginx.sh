# Serve a directory with nginx on loopback, for tests and the demo. Source this file.
#   nginx_start DIR PORT   starts nginx serving DIR on 127.0.0.1:PORT; sets NGINX_PID
#   nginx_stop             stops the nginx this shell started (by its PID only)
# Logs and config go to $NGINX_RUN (default: a temp dir).

nginx_start() {
	local root=$1 port=$2
	NGINX_RUN=${NGINX_RUN:-$(mktemp -d /tmp/circular-nginx.XXXXXX)}
	mkdir -p "$NGINX_RUN"
	cat >"$NGINX_RUN/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $NGINX_RUN/nginx.pid;
error_log $NGINX_RUN/error.log warn;
events { worker_connections 512; }
http {
    access_log $NGINX_RUN/access.log;
    client_body_temp_path $NGINX_RUN/body;
    proxy_temp_path $NGINX_RUN/proxy;
    fastcgi_temp_path $NGINX_RUN/fastcgi;
    uwsgi_temp_path $NGINX_RUN/uwsgi;
    scgi_temp_path $NGINX_RUN/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types { application/json json; application/rss+xml xml; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port;
        root $root;
    }
}
CONF
	nginx -c "$NGINX_RUN/nginx.conf" -p "$NGINX_RUN" &
	NGINX_PID=$!
	local i
	for i in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then return 0; fi
		kill -0 "$NGINX_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "nginx did not start on port $port; see $NGINX_RUN/error.log" >&2
	cat "$NGINX_RUN/error.log" >&2 || true
	return 1
}

nginx_stop() {
	if [ -n "${NGINX_PID:-}" ]; then
		kill "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=
	fi
}
