#!/usr/bin/env bash
# Builds Roam's small test/demo guest from Debian packages, cached:
#   OUTDIR/vmlinuz      Debian's linux-image-6.1.0-*-amd64 kernel (apt-get download + dpkg -x; not installed on the host)
#   OUTDIR/initrd.img   gzip'd newc cpio: static busybox + applet links, guest/init as /init, virtio-blk modules,
#                       /bin/workload (guest/workload.c, static); for roam.net=dhcp: virtio_net's modules (own load
#                       list), guest/roam-net, guest/udhcpc.script, /bin/netstream (guest/netstream.c, static) and
#                       iproute2's ip as /sbin/ip-full (busybox's ip has no `ip mptcp`) with its libraries and loader
#   OUTDIR/workload     the same static binary, for the host: `workload --verify disk.raw` checks the records
# Usage: scripts/build-guest.sh [OUTDIR]      (default: .cache/guest under the repo)
# Idempotent: does nothing when the outputs exist and the inputs (this script, the guest/ files it packs, the
# kernel package name, busybox, iproute2 and gcc versions, the ip binary and its libraries) are unchanged.
# Env: KERNEL_PKG=linux-image-... to pin the kernel; FORCE=1 to rebuild.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/.cache/guest}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log() { echo "build-guest: $*" >&2; }

# --- host tools -------------------------------------------------------------------------------------------------
need=()
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in busybox-static gcc libc6-dev cpio kmod gzip iproute2; do have_pkg "$p" || need+=("$p"); done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
busybox=$(command -v busybox || echo /bin/busybox)
depmod=$(command -v depmod || echo /usr/sbin/depmod)
ipbin=""
for c in /usr/sbin/ip /sbin/ip /usr/bin/ip /bin/ip; do [ -x "$c" ] && { ipbin=$c; break; }; done
[ -n "$ipbin" ] || { log "iproute2's ip not found"; exit 1; }
# What ip needs at run time: the shared libraries ldd resolves, and the dynamic loader (the one line without =>);
# none for a static ip. A library ldd cannot find fails the build here, not the guest's first `ip mptcp`.
if ldd "$ipbin" 2>/dev/null | grep -q "not found"; then log "ldd $ipbin: $(ldd "$ipbin" | grep "not found")"; exit 1; fi
iplibs=$(ldd "$ipbin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u || true)

# --- which kernel -----------------------------------------------------------------------------------------------
kpkg="${KERNEL_PKG:-}"
if [ -z "$kpkg" ]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
if [ -z "$kpkg" ] && [ -f "$out/.kernel-pkg" ]; then kpkg=$(cat "$out/.kernel-pkg"); fi
if [ -z "$kpkg" ]; then
  # A fresh machine may have no package lists yet.
  $sudo apt-get update -qq || true
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kpkg" ] || { log "cannot resolve linux-image-amd64's kernel package (run apt-get update?)"; exit 1; }

stamp=$( {
  cat "$0" "$repo/guest/init" "$repo/guest/workload.c" "$repo/guest/netstream.c" "$repo/guest/roam-net" \
      "$repo/guest/udhcpc.script"
  echo "$kpkg"
  dpkg-query -W -f='${Version}' busybox-static
  dpkg-query -W -f='${Version}' iproute2
  # shellcheck disable=SC2086
  sha256sum "$ipbin" $iplibs
  gcc -dumpfullversion
} | sha256sum | cut -d' ' -f1)

print_paths() {
  echo "$out/vmlinuz"
  echo "$out/initrd.img"
  echo "$out/workload"
}

if [ "${FORCE:-0}" != 1 ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ -x "$out/workload" ] &&
   [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  log "up to date ($kpkg)"
  print_paths
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- kernel package: download (cached) and extract --------------------------------------------------------------
mkdir -p "$out/downloads"
deb=$(ls "$out/downloads/${kpkg}"_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
  log "downloading $kpkg"
  (cd "$tmp" && apt-get download -q "$kpkg" 2>&1 | grep -v -i 'unsandboxed' >&2 || true)
  f=$(ls "$tmp/${kpkg}"_*.deb 2>/dev/null | head -n1 || true)
  [ -n "$f" ] || { log "apt-get download $kpkg failed"; exit 1; }
  rm -f "$out/downloads/"linux-image-*.deb
  mv "$f" "$out/downloads/"
  deb="$out/downloads/$(basename "$f")"
fi
log "extracting $(basename "$deb")"
kx="$tmp/kernel"
dpkg -x "$deb" "$kx"
kver=$(ls "$kx/lib/modules" | head -n1)
mods="$kx/lib/modules/$kver"
[ -f "$kx/boot/vmlinuz-$kver" ] || { log "no boot/vmlinuz-$kver in $deb"; exit 1; }
[ -f "$mods/modules.dep" ] || "$depmod" -b "$kx" "$kver"

# --- virtio-blk over PCI, then virtio-net: modules (skip built-ins), dependency order from modules.dep --------------
config="$kx/boot/config-$kver"
order=()
declare -A seen=()
resolve() { # $1 = module path relative to $mods, as in modules.dep
  local rel="$1" dep
  [ -n "${seen[$rel]:-}" ] && return 0
  seen[$rel]=1
  for dep in $(awk -v m="$rel:" '$1 == m { for (i = 2; i <= NF; i++) print $i; exit }' "$mods/modules.dep"); do
    resolve "$dep"
  done
  order+=("$rel")
}
find_mod() { # $1 = module name; prints its path in modules.dep, nothing if built in; fails if neither
  local m="$1" rel
  rel=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.(xz|zst|gz))?$/, "", n); gsub(/-/, "_", n);
                             if (n == m) { print $1; exit } }' "$mods/modules.dep")
  if [ -z "$rel" ]; then
    if grep -Eq "/${m}\.ko" "$mods/modules.builtin" 2>/dev/null; then log "$m: built in"; return 0; fi
    log "$m: neither a module nor built in (config: $(grep -i "CONFIG_${m}=" "$config" || true))"; return 1
  fi
  echo "$rel"
}
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  rel=$(find_mod "$m") || exit 1
  [ -z "$rel" ] || resolve "$rel"
done
blk_order=("${order[@]}")
# virtio_net's own list, loaded only with roam.net=: today's guests load exactly what they did. `seen` is kept, so
# the virtio core already in the block list is not listed twice; failover and net_failover come in as dependencies.
order=()
rel=$(find_mod virtio_net) || exit 1
[ -z "$rel" ] || resolve "$rel"
net_order=("${order[@]}")

# --- initramfs --------------------------------------------------------------------------------------------------
root="$tmp/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,lib/modules}
cp "$busybox" "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -sf /bin/busybox "$root/$applet"
done
install -m 0755 "$repo/guest/init" "$root/init"
gcc -O2 -static -pthread -Wall -o "$tmp/workload" "$repo/guest/workload.c"
install -m 0755 "$tmp/workload" "$root/bin/workload"
gcc -O2 -static -Wall -o "$tmp/netstream" "$repo/guest/netstream.c"
install -m 0755 "$tmp/netstream" "$root/bin/netstream"
install -m 0755 "$repo/guest/roam-net" "$root/sbin/roam-net"
mkdir -p "$root/etc/roam"
install -m 0755 "$repo/guest/udhcpc.script" "$root/etc/roam/udhcpc.script"
install -m 0755 "$ipbin" "$root/sbin/ip-full"
for f in $iplibs; do # at the path ldd names (the loader's too: /lib64/...), symlinks followed
  mkdir -p "$root$(dirname "$f")"
  cp -L "$f" "$root$f"
done
add_mods() { # $1 = list file name, then module paths relative to $mods
  local list="$root/lib/modules/$1" rel name
  shift
  : >"$list"
  for rel in "$@"; do
    name=$(basename "$rel")
    case "$name" in
      *.ko.xz) xz -dc "$mods/$rel" >"$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
      *.ko.zst) zstd -qdc "$mods/$rel" >"$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
      *.ko.gz) gzip -dc "$mods/$rel" >"$root/lib/modules/${name%.gz}"; name=${name%.gz} ;;
      *) cp "$mods/$rel" "$root/lib/modules/$name" ;;
    esac
    echo "$name" >>"$list"
  done
}
add_mods load-order "${blk_order[@]}"
add_mods net-load-order "${net_order[@]}"
log "modules ($kver): $(tr '\n' ' ' <"$root/lib/modules/load-order")+ for roam.net: $(tr '\n' ' ' <"$root/lib/modules/net-load-order")"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$tmp/initrd.img"

# --- publish atomically -----------------------------------------------------------------------------------------
cp "$kx/boot/vmlinuz-$kver" "$out/vmlinuz.new" && mv -f "$out/vmlinuz.new" "$out/vmlinuz"
mv -f "$tmp/initrd.img" "$out/initrd.img"
mv -f "$tmp/workload" "$out/workload"
echo "$kpkg" >"$out/.kernel-pkg"
echo "$kver" >"$out/kernel-version"
echo "$stamp" >"$out/.stamp"
log "built guest: kernel $kver, initrd $(du -h "$out/initrd.img" | cut -f1)"
print_paths
