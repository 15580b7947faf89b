#!/bin/bash
# User data of the lab 02 web tier: runs once, as root, when an instance first boots.
# securecart puts `export DB_HOST=… DB_PORT=… APP_PORT=…` right after the first line
# (from `user_data_vars` in blueprint.yaml). Everything it needs is already on Amazon
# Linux 2023 (python3, systemd), so the instances need no internet access.
set -euo pipefail

install -d -m 0755 /opt/securecart
cat > /etc/securecart-web.env <<ENV
DB_HOST=${DB_HOST}
DB_PORT=${DB_PORT}
APP_PORT=${APP_PORT}
ENV

cat > /opt/securecart/web.py <<'PY'
"""SecureCart lab 02 web page: which instance answered, and whether it reaches the
database. /health answers the load balancer's health check."""
import html
import os
import socket
import struct
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB_HOST = os.environ["DB_HOST"]
DB_PORT = int(os.environ.get("DB_PORT", "5432"))
APP_PORT = int(os.environ.get("APP_PORT", "8080"))


def metadata(path):
    """Instance metadata through IMDSv2 (the launch template requires session tokens)."""
    try:
        put = urllib.request.Request(
            "http://169.254.169.254/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
        )
        token = urllib.request.urlopen(put, timeout=2).read().decode()
        get = urllib.request.Request(
            f"http://169.254.169.254/latest/meta-data/{path}",
            headers={"X-aws-ec2-metadata-token": token},
        )
        return urllib.request.urlopen(get, timeout=2).read().decode()
    except OSError as e:
        return f"unknown ({e})"


INSTANCE = metadata("instance-id")
ZONE = metadata("placement/availability-zone")


def database():
    """Opens a TCP connection to PostgreSQL and sends an SSLRequest: an answer of S or
    N comes from PostgreSQL itself, with no password needed."""
    start = time.monotonic()
    try:
        with socket.create_connection((DB_HOST, DB_PORT), timeout=3) as s:
            s.settimeout(3)
            s.sendall(struct.pack("!ii", 8, 80877103))
            answer = s.recv(1)
        ms = (time.monotonic() - start) * 1000
        if answer in (b"S", b"N"):
            tls = "offers TLS" if answer == b"S" else "without TLS"
            return True, f"PostgreSQL answered in {ms:.0f} ms ({tls})"
        return False, f"something answered {answer!r}, not PostgreSQL"
    except OSError as e:
        return False, f"cannot connect: {e}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            self.reply(200, "text/plain", "ok\n")
            return
        ok, detail = database()
        colour = "#1a7f37" if ok else "#cf222e"
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>SecureCart lab 02</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>SecureCart web tier</h1>
<p>Served by instance <b>{html.escape(INSTANCE)}</b> in <b>{html.escape(ZONE)}</b>,
behind the Application Load Balancer. Reload to see the other instance answer.</p>
<p>Database <code>{html.escape(DB_HOST)}:{DB_PORT}</code>:
<b style="color: {colour}">{"reachable" if ok else "NOT reachable"}</b>
— {html.escape(detail)}</p>
</body></html>
"""
        self.reply(200 if ok else 503, "text/html; charset=utf-8", page)

    def reply(self, status, kind, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("", APP_PORT), Handler).serve_forever()
PY

cat > /etc/systemd/system/securecart-web.service <<'UNIT'
[Unit]
Description=SecureCart lab 02 web page
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=/etc/securecart-web.env
ExecStart=/usr/bin/python3 /opt/securecart/web.py
DynamicUser=yes
Restart=always

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now securecart-web.service
