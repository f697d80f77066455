# Sourced by scripts/test.sh: apt-get that waits while another process (unattended-upgrades, a second
# apt) holds apt's or dpkg's lock, instead of failing at once.
# APT_WAIT_TRIES (default 40) and APT_WAIT_SECONDS (default 15) bound the wait: 10 minutes.

apt_wait() {
  local tries=0 out
  while :; do
    # DPkg::Lock::Timeout makes apt itself wait on dpkg's lock; the loop covers the lists lock and older apt.
    if out=$(apt-get -o DPkg::Lock::Timeout="${APT_WAIT_SECONDS:-15}" "$@" 2>&1); then
      return 0
    fi
    if grep -qE "Could not get lock|Unable to acquire|Unable to lock|is another process using it" <<<"$out" \
        && [ "$tries" -lt "${APT_WAIT_TRIES:-40}" ]; then
      tries=$((tries + 1))
      echo "apt is busy (another process holds its lock): waiting (${tries}/${APT_WAIT_TRIES:-40})" >&2
      sleep "${APT_WAIT_SECONDS:-15}"
      continue
    fi
    printf '%s\n' "$out" >&2
    return 1
  done
}
