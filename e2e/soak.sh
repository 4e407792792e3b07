#!/usr/bin/env bash
# Soak test (issue 15), run on request: `make soak` (as root), SOAK_BOOTS boots (default 20).
# Not a test-*.sh: `make test` does not run it.
#
# A store holding the soak guest (lib/soak-guest.sh: its init reads its whole disk and
# prints the SHA-1) is served by real nginx through two netshape proxies (two mirrors of
# one server, each link 10 ms RTT and 24 Mbit/s, so that the guest's reads span much of
# the boot and the faults meet fetches in flight), and mounted by a real `blockfs mount` whose cache is on a 24 MiB tmpfs,
# pre-filled so that about 12 MiB are free: less than the 34 MiB of blocks the guest
# reads, so the cache fills, evicts and meets ENOSPC on every boot. Each boot starts
# a fresh blockfs on a cold or partly cold cache and boots the guest under QEMU (TCG),
# its disk attached exactly as the menu attaches it (the command line is
# `circular qemu-command`'s: the image on blockfs's mount under a qcow2 overlay).
# During the boot, at random moments, one fault at a time:
#   kill   nginx is killed (SIGKILL) and restarted 1-5 s later
#   drop   netshape resets every connection and refuses new ones (one mirror or both), 1-6 s
#   stall  netshape moves no byte (one mirror or both), 1-10 s
#   fill   the cache filesystem is filled to the last byte, emptied again 2-8 s later
# Every fault is shorter than blockfs's --deadline (60 s), so the guest must never see
# an error. Each boot must: print the image's SHA-1 (no byte differs), show no I/O error
# on its console (`I/O error`, `blk_update_request`, `Buffer I/O`, `Input/output error`),
# and finish within SOAK_BOOT_SECONDS (default 600). blockfs's last_error must stay null.
# It prints a line per boot and a summary: faults by kind, bytes fetched, retries,
# hedged requests and failovers (blockfs status.json), connections the proxies reset,
# the longest the guest waited for one 1 MiB read of its disk (it times each one),
# cache evictions. It exits
# non-zero if any boot failed. SOAK_SEED makes the fault schedule repeatable.
# Results also go to build/soak/results.txt.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh
# shellcheck source=lib/soak-guest.sh
source e2e/lib/soak-guest.sh

BOOTS=${SOAK_BOOTS:-20}
BOOT_SECONDS=${SOAK_BOOT_SECONDS:-600}
DEADLINE=60
SEED=${SOAK_SEED:-$(date +%s)}
RANDOM=$((SEED % 32768))
DATE=2026-11-29
CACHE_FS_MIB=24
CACHE_FREE_MIB=12
ERRORS='I/O error|blk_update_request|Buffer I/O|Input/output error|critical medium|READ-FAILED'

need_root
need_bins blockfs image-build circular netshape
for p in nginx qemu-system-x86_64 qemu-img; do
	command -v "$p" >/dev/null || fail "$p is missing: run make deps"
done
results_dir=$BUILD/soak
mkdir -p "$results_dir"
results=$results_dir/results.txt
: >"$results"
say() { echo "$*" | tee -a "$results"; }

work_dir soak
NGINX_RUN=$work/nginx
BLOCKFS_PID= QEMU_PID= NS_A_PID= NS_B_PID=
stop_pid() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
at_exit 'mountpoint -q "$work/cachefs" && umount "$work/cachefs"'
at_exit 'stop_pid "$NS_A_PID"; stop_pid "$NS_B_PID"; nginx_stop'
at_exit 'stop_pid "$QEMU_PID"; stop_pid "$BLOCKFS_PID"'
on_fail() {
	echo "soak: work dir $work (serial logs boot-*.log, blockfs.log, faults.log)"
}

step "the guest and its store"
IMAGE_BUILD=$bin/image-build soak_guest_build
image=$SOAK_GUEST_IMG
image_size=$(stat -c %s "$image")
want=$(sha1sum "$image" | cut -d' ' -f1)
"$bin/image-build" keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
"$bin/image-build" add --store "$work/www/store" --distro soak --date $DATE --title "Soak guest" \
	--memory-mib 192 --cpus 1 --key "$work/key" "$image" | tee "$work/add.log"
stored_blocks=$(find "$work/www/store/blocks" -type f | wc -l)
stored_bytes=$(du -sb "$work/www/store/blocks" | cut -f1)

step "nginx, two netshape mirrors, a ${CACHE_FS_MIB} MiB cache filesystem with ${CACHE_FREE_MIB} MiB free"
NGINX_PORT=$(free_port)
nginx_start "$work/www" "$NGINX_PORT"
PORT_A=$(free_port)
PORT_B=$(free_port)
start_proxy() { # NAME PORT
	"$bin/netshape" --listen "127.0.0.1:$2" --to "127.0.0.1:$NGINX_PORT" --rtt-ms 10 --rate-mbit 24 \
		--fault-file "$work/fault-$1" --stats "$work/netshape-$1.json" >/dev/null 2>>"$work/netshape-$1.log" &
}
start_proxy a "$PORT_A"
NS_A_PID=$!
start_proxy b "$PORT_B"
NS_B_PID=$!
for port in "$PORT_A" "$PORT_B"; do
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "netshape did not listen on $port; see $work/netshape-*.log"
done
cachefs=$work/cachefs
mkdir -p "$cachefs" "$work/mnt"
mount -t tmpfs -o "size=${CACHE_FS_MIB}m,mode=0700" soak-cache "$cachefs"
free_kib=$(df --output=avail -k "$cachefs" | tail -1)
fallocate -l $(((free_kib - CACHE_FREE_MIB * 1024) * 1024)) "$cachefs/filler"
df -h "$cachefs" | tail -1
sources="http://127.0.0.1:$PORT_A/store/,http://127.0.0.1:$PORT_B/store/"

# --- faults -------------------------------------------------------------------
now_us() { echo "${EPOCHREALTIME/./}"; }
set_fault() { # WORD MIRRORS...
	local word=$1 m
	shift
	for m in "$@"; do
		echo "$word" >"$work/fault-$m.tmp"
		mv "$work/fault-$m.tmp" "$work/fault-$m"
	done
}
declare -A total_faults=([kill]=0 [drop]=0 [stall]=0 [fill]=0)
declare -A boot_faults
fault= fault_mirrors= fault_end=0 next_fault=0
rand_us() { echo $(((RANDOM % ($2 - $1 + 1) + $1) * 1000)); } # MIN_MS MAX_MS -> microseconds
start_fault() {
	local kinds=(kill drop stall fill) mirrors=(a b "a b")
	fault=${kinds[RANDOM % 4]}
	fault_mirrors=${mirrors[RANDOM % 3]}
	local len
	case $fault in
	kill)
		kill -9 "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
		NGINX_PID=
		len=$(rand_us 1000 5000)
		fault_mirrors=-
		;;
	drop) set_fault drop $fault_mirrors; len=$(rand_us 1000 6000) ;;
	stall) set_fault stall $fault_mirrors; len=$(rand_us 1000 10000) ;;
	fill)
		dd if=/dev/zero of="$cachefs/fill" bs=64k 2>/dev/null || true
		len=$(rand_us 2000 8000)
		fault_mirrors=-
		;;
	esac
	fault_end=$(($(now_us) + len))
	boot_faults[$fault]=$((${boot_faults[$fault]:-0} + 1))
	total_faults[$fault]=$((total_faults[$fault] + 1))
	echo "$(date +%T.%N) boot $boot: $fault ${fault_mirrors} for $((len / 1000)) ms" >>"$work/faults.log"
}
end_fault() {
	case $fault in
	kill) nginx_start "$work/www" "$NGINX_PORT" >>"$work/faults.log" 2>&1 || fail "nginx did not come back" ;;
	drop | stall) set_fault none $fault_mirrors ;;
	fill) rm -f "$cachefs/fill" ;;
	esac
	echo "$(date +%T.%N) boot $boot: $fault over" >>"$work/faults.log"
	fault=
	next_fault=$(($(now_us) + $(rand_us 500 5000)))
}
tick_faults() {
	local t
	t=$(now_us)
	if [ -n "$fault" ]; then
		[ "$t" -ge "$fault_end" ] && end_fault
	elif [ "$t" -ge "$next_fault" ]; then
		start_fault
	fi
	return 0
}

# --- one boot -------------------------------------------------------------------
status_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2"; }

failures=0
sum_fetched=0 sum_retries=0 sum_hedged=0 sum_failovers=0 sum_evicted=0 max_stall_all=0.00 max_secs=0 sum_secs=0
say "soak: $BOOTS boots of a $((image_size >> 20)) MiB guest ($stored_blocks blocks, $((stored_bytes >> 20)) MiB stored), seed $SEED, $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
say "$(printf '%-5s %-6s %7s %6s %5s %5s %5s %5s %8s %6s %6s %6s %7s %8s' boot result secs cached kill drop stall fill fetchMiB retry hedged failov evicted longMiB)"
for boot in $(seq "$BOOTS"); do
	boot_faults=()
	# A cold cache every fourth boot, else a random part of what the last boot left.
	if [ $((boot % 4)) -eq 1 ]; then
		rm -rf "$cachefs/cache/blocks"
	elif [ -d "$cachefs/cache/blocks" ]; then
		while read -r f; do
			if [ $((RANDOM % 2)) -eq 0 ]; then rm -f "$f"; fi
		done < <(find "$cachefs/cache/blocks" -type f)
	fi
	"$bin/blockfs" mount --cache "$cachefs/cache" --cache-max 1G --deadline $DEADLINE \
		--public "$work/key.pub" "$sources" "$work/mnt" 2>>"$work/blockfs.log" &
	BLOCKFS_PID=$!
	for _ in $(seq 600); do [ -e "$work/mnt/status.json" ] && break; sleep 0.1; done
	[ -e "$work/mnt/status.json" ] || fail "boot $boot: blockfs did not mount; see $work/blockfs.log"
	cached_at_start=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshots"][0]; print(s["cached_blocks"])' \
		"$work/mnt/status.json")

	ov=$work/overlay.qcow2
	rm -f "$ov"
	qemu-img create -q -f qcow2 -u -F raw -b "$work/mnt/soak/$DATE.img" "$ov" "$image_size"
	mapfile -t qemu < <("$bin/circular" qemu-command --distribution soak --date $DATE --accel tcg \
		--display none --memory-mib 192 --cpus 1 --overlay "$ov" --image "$work/mnt/soak/$DATE.img")
	serial=$work/boot-$boot.log
	"${qemu[@]}" </dev/null >"$serial" 2>"$work/qemu-$boot.err" &
	QEMU_PID=$!
	t0=$(now_us)
	next_fault=$((t0 + $(rand_us 0 3000)))
	result=
	while :; do
		t=$(now_us)
		if grep -qa SOAK-GUEST-DONE "$serial"; then result=done; break; fi
		kill -0 "$QEMU_PID" 2>/dev/null || { result=exited; break; }
		[ $((t - t0)) -gt $((BOOT_SECONDS * 1000000)) ] && { result=timeout; break; }
		tick_faults
		sleep 0.2
	done
	secs=$((($(now_us) - t0) / 1000000))
	[ -n "$fault" ] && end_fault
	cp "$work/mnt/status.json" "$work/status-$boot.json"
	stop_pid "$QEMU_PID"
	QEMU_PID=
	stop_pid "$BLOCKFS_PID"
	BLOCKFS_PID=

	st=$work/status-$boot.json
	fetched=$(status_field "$st" fetched_bytes)
	retries=$(status_field "$st" retries)
	hedged=$(status_field "$st" hedged_requests)
	failovers=$(status_field "$st" failovers)
	evicted=$(status_field "$st" evicted_blocks)
	last_error=$(status_field "$st" last_error)
	max_stall=$(sed -n 's/.*SOAK-GUEST-LONGEST-MIB \([0-9.]*\) s.*/\1/p' "$serial" | head -1)
	max_stall=${max_stall:-?}
	got=$(sed -n 's/.*SOAK-GUEST-SHA1 \([0-9a-f]\{40\}\) .*rc=\([0-9]*\).*/\1 \2/p' "$serial" | head -1)
	problems=()
	[ "$result" = done ] || problems+=("the boot did not finish ($result after $secs s)")
	[ "${got% *}" = "$want" ] || problems+=("the guest's SHA-1 is '${got% *}', the image's $want")
	[ "${got#* }" = 0 ] || problems+=("the guest's read of its disk failed (rc ${got#* })")
	if grep -qaE "$ERRORS" "$serial"; then problems+=("the guest's console shows: $(grep -aE "$ERRORS" "$serial" | head -3 | tr '\n' ' ')"); fi
	[ "$last_error" = None ] || problems+=("blockfs's last_error: $last_error")
	verdict=PASS
	if [ ${#problems[@]} -gt 0 ]; then
		verdict=FAIL
		failures=$((failures + 1))
	fi
	say "$(printf '%-5s %-6s %7s %6s %5s %5s %5s %5s %8.1f %6s %6s %6s %7s %7ss' "$boot" "$verdict" "$secs" "$cached_at_start" \
		"${boot_faults[kill]:-0}" "${boot_faults[drop]:-0}" "${boot_faults[stall]:-0}" "${boot_faults[fill]:-0}" \
		"$(python3 -c "print($fetched / 1048576)")" "$retries" "$hedged" "$failovers" "$evicted" "$max_stall")"
	for p in "${problems[@]}"; do say "      FAIL boot $boot: $p"; done
	sum_fetched=$((sum_fetched + fetched)) sum_retries=$((sum_retries + retries)) sum_hedged=$((sum_hedged + hedged))
	sum_failovers=$((sum_failovers + failovers)) sum_evicted=$((sum_evicted + evicted)) sum_secs=$((sum_secs + secs))
	max_stall_all=$(python3 -c "import sys; print(max(float(a) for a in sys.argv[1:] if a != '?'))" "$max_stall_all" "$max_stall")
	[ "$secs" -gt "$max_secs" ] && max_secs=$secs
done

resets=0
for m in a b; do
	resets=$((resets + $(status_field "$work/netshape-$m.json" resets)))
done
say ""
say "summary: $BOOTS boots, $((BOOTS - failures)) passed, $failures failed"
say "  faults injected: ${total_faults[kill]} nginx kills, ${total_faults[drop]} drops, ${total_faults[stall]} stalls, ${total_faults[fill]} cache fills"
say "  connections reset by the proxies: $resets"
say "  fetched: $(python3 -c "print(f'{$sum_fetched / 1048576:.1f}')") MiB; retries $sum_retries, hedged requests $sum_hedged, failovers $sum_failovers"
say "  cache evictions: $sum_evicted blocks; blockfs warnings about a full cache disk: $(grep -c 'full or read-only' "$work/blockfs.log" || true)"
say "  boot time: mean $((sum_secs / BOOTS)) s, max $max_secs s (bound $BOOT_SECONDS s); longest 1 MiB read in a guest: $max_stall_all s (deadline $DEADLINE s)"
[ "$failures" -eq 0 ] || fail "$failures of $BOOTS soak boots failed (see above; logs in $work)"
say "PASS: soak, $BOOTS boots, no I/O error, every byte the same"
