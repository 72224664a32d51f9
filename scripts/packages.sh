# Sourced by scripts/test.sh and scripts/quickstart.sh: installs from Debian's packages what a
# fresh machine lacks (CI runs as root with no stdin). `rtctl up` never installs system packages
# itself, so these scripts do.

# nats-server and haproxy live in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# apt_install WHY PACKAGE...: install the packages in one apt-get run, saying why on stderr.
apt_install() {
  local why=$1
  shift
  echo "installing $* from Debian's packages ($why)" >&2
  apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}

# install_cluster_programs: redis-server, nats-server and haproxy, those that are missing. A
# cluster (`rtctl up --nodes 3`) runs its bus (Redis or NATS) and its front door (HAProxy) from them.
install_cluster_programs() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nats-server >/dev/null || missing+=(nats-server)
  command -v haproxy >/dev/null || missing+=(haproxy)
  if ((${#missing[@]})); then
    apt_install "a cluster's bus and front door" "${missing[@]}"
  fi
}
