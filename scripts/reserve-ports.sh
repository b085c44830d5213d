#!/usr/bin/env bash
# Sourced by the scripts that start servers on this machine (npm start, npm test,
# the benchmarks). Their gRPC and metrics ports (50000-59999) lie inside Linux's
# ephemeral port range (32768-60999 by default), so an outgoing connection (a
# health check, a client) can hold such a port just before a server binds it:
# EADDRINUSE at start-up, at random. Reserving the range keeps the kernel from
# handing it out to outgoing connections. It needs root (CI runs as root);
# otherwise this only says how.
recsys_reserve_ports() {
  local want="50000-59999" file=/proc/sys/net/ipv4/ip_local_reserved_ports
  [ -r "$file" ] || return 0
  grep -q "$want" "$file" && return 0
  if [ -w "$file" ] && { [ -z "$(cat "$file")" ] || [ "$(cat "$file")" = "$want" ]; }; then
    echo "$want" >"$file" 2>/dev/null && return 0
  fi
  echo "[ports] ports $want are not reserved from ephemeral use: a server may rarely fail to bind" \
    "(EADDRINUSE); as root: sysctl -w net.ipv4.ip_local_reserved_ports=$want" >&2
}
recsys_reserve_ports
