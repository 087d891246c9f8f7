# Sourced by the debootstrap builds (build-base-image.sh, build-kind-node-image.sh):
# the host's Debian mirror for $SUITE, and the snapshot it pins when a comment in
# its sources names one, so that the images are built from the same packages as
# the host. Sets LINE ("URI [snapshot]") and MIRROR (DEBIAN_MIRROR overrides it).
mirror_line() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [[ -f "$f" ]] || continue
    if [[ "$f" == *.sources ]]; then
      # deb822: the stanza whose Suites name $SUITE (not -security).
      awk -v suite="$SUITE" '
        /^#.*snapshot/ { snap = $2 }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
        /^$/ { if (hit) { print uri, snap; exit } uri = ""; snap = ""; hit = 0 }
        END { if (hit) print uri, snap }' "$f"
    else
      awk -v suite="$SUITE" '$1 == "deb" && $3 == suite && $2 ~ /debian/ { print $2; exit }' "$f"
    fi
  done | head -n 1
}
LINE="$(mirror_line)"
MIRROR="${DEBIAN_MIRROR:-${LINE%% *}}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
