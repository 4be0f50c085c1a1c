# cairn boot script for Debian's qemu-x86 U-Boot 2023.01 (hush).
# Built into boot.scr by tools/qemu/mkbootscr (mkimage -T script); found on
# partition 1 by U-Boot's distro boot. The protocol is trails/BOOT.md's; the
# disk layout and the environment format are in tools/qemu/README.md.
#
# This U-Boot has no setexpr, so memory is compared with itest and flag
# arithmetic goes through digit loops. Every line it prints starts with
# "cairn-boot:" (the qemu tests read them from the serial log).
#
# Environment: two redundant copies of 0x4000 bytes at sectors 0x200 and
# 0x220 of virtio 0, each crc32 | flag | data (libubootenv's layout for two
# lines in fw_env.config). env import -c wants crc | data, so each copy is
# rearranged before it is checked:
#   0x2000000 raw copy A   0x2004000 raw copy B   (read in one go)
#   0x2010000 A as crc|data   0x2014000 B as crc|data
#   0x2018000 export buffer   0x201c000 the copy to write, crc|flag|data

setenv cairn_rev
setenv cairn_try
setenv cairn_trying
setenv c_cur
setenv c_boot
setenv c_booted

if virtio read 0x2000000 0x200 0x40; then
	cp.b 0x2000000 0x2010000 4
	cp.b 0x2000005 0x2010004 0x3ffb
	cp.b 0x2004000 0x2014000 4
	cp.b 0x2004005 0x2014004 0x3ffb
	if env import -c 0x2010000 0x3fff cairn_rev cairn_try cairn_trying; then
		setenv c_cur a
	fi
	if env import -d -c 0x2014000 0x3fff cairn_rev cairn_try cairn_trying; then
		if test "${c_cur}" = a; then
			# both valid: the newer flag wins, 0x00 follows 0xff
			setenv c_anewer
			if itest.b *0x2000004 -ge *0x2004004; then setenv c_anewer 1; fi
			if itest.b *0x2000004 -eq 0xff && itest.b *0x2004004 -eq 0x00; then setenv c_anewer; fi
			if itest.b *0x2004004 -eq 0xff && itest.b *0x2000004 -eq 0x00; then setenv c_anewer 1; fi
			if test -n "${c_anewer}"; then
				env import -d -c 0x2010000 0x3fff cairn_rev cairn_try cairn_trying
			else
				setenv c_cur b
			fi
		else
			setenv c_cur b
		fi
	fi
fi

if test -z "${c_cur}"; then
	echo "cairn-boot: no valid environment copy at virtio 0 sectors 0x200/0x220"
fi
echo "cairn-boot: env copy ${c_cur}: cairn_rev=${cairn_rev} cairn_try=${cairn_try} cairn_trying=${cairn_trying}"
setenv c_boot ${cairn_rev}

# The try, once: mark it taken (cairn_trying) in the other copy with the next
# flag, and boot it only if that write succeeded.
if test -n "${cairn_try}" && test "${cairn_try}" != "${cairn_trying}"; then
	if test "${c_cur}" = a; then
		setenv c_fadr 0x2000004
		setenv c_wsec 0x220
	else
		setenv c_fadr 0x2004004
		setenv c_wsec 0x200
	fi
	# the current flag as two hex digits
	setenv c_fh
	setenv c_fl
	for h in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do
		for l in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do
			if itest.b *${c_fadr} -eq 0x${h}${l}; then setenv c_fh ${h}; setenv c_fl ${l}; fi
		done
	done
	# plus one: the digit after c_fl, and after c_fh when c_fl wraps
	setenv c_p x
	setenv c_nl
	for d in 0 1 2 3 4 5 6 7 8 9 a b c d e f 0; do
		if test -z "${c_nl}" && test "${c_p}" = "${c_fl}"; then setenv c_nl ${d}; fi
		setenv c_p ${d}
	done
	setenv c_nh ${c_fh}
	if test "${c_fl}" = f; then
		setenv c_p x
		setenv c_nh
		for d in 0 1 2 3 4 5 6 7 8 9 a b c d e f 0; do
			if test -z "${c_nh}" && test "${c_p}" = "${c_fh}"; then setenv c_nh ${d}; fi
			setenv c_p ${d}
		done
	fi
	setenv cairn_trying ${cairn_try}
	if env export -c -s 0x3fff 0x2018000 cairn_rev cairn_try cairn_trying; then
		cp.b 0x2018000 0x201c000 4
		mw.b 0x201c004 0x${c_nh}${c_nl} 1
		cp.b 0x2018004 0x201c005 0x3ffb
		if virtio write 0x201c000 ${c_wsec} 0x20; then
			echo "cairn-boot: try ${cairn_try} marked taken (sector ${c_wsec}, flag 0x${c_nh}${c_nl})"
			setenv c_boot ${cairn_try}
		else
			echo "cairn-boot: could not save the environment: not booting try ${cairn_try}"
		fi
	else
		echo "cairn-boot: could not export the environment: not booting try ${cairn_try}"
	fi
fi

# Boot the chosen revision; when its files are missing or unreadable, the
# committed one in the same boot. A revision's files are cairn's placement
# (trails/BOOT.md): /boot/<rev>/vmlinuz (required), initrd.img and
# cmdline.env (cairn_cmdline=..., env import -t format), both optional.
# bootargs = board default, the revision's cmdline, cairn.rev= (the last word
# of a key wins, so the revision may override the board's storage).
setenv c_board "cairn.storage=/dev/vda2"
for r in ${c_boot} ${cairn_rev}; do
	if test -z "${c_booted}" && test -e virtio 0:2 /boot/${r}/vmlinuz; then
		setenv c_booted ${r}
		setenv cairn_cmdline
		if test -e virtio 0:2 /boot/${r}/cmdline.env; then
			if load virtio 0:2 0x2020000 /boot/${r}/cmdline.env && env import -t 0x2020000 ${filesize} cairn_cmdline; then
				true
			else
				setenv c_booted
			fi
		fi
		if test -n "${c_booted}" && load virtio 0:2 ${kernel_addr_r} /boot/${r}/vmlinuz; then
			setenv bootargs "${c_board} ${cairn_cmdline} cairn.rev=${r}"
			if test -e virtio 0:2 /boot/${r}/initrd.img; then
				if load virtio 0:2 0x10000000 /boot/${r}/initrd.img; then
					echo "cairn-boot: booting revision ${r} (chosen ${c_boot}, committed ${cairn_rev}): ${bootargs}"
					zboot ${kernel_addr_r} 0 0x10000000 ${filesize}
				fi
			else
				echo "cairn-boot: booting revision ${r} (chosen ${c_boot}, committed ${cairn_rev}): ${bootargs}"
				zboot ${kernel_addr_r}
			fi
		fi
		echo "cairn-boot: revision ${r}: its boot files could not be loaded or booted"
		setenv c_booted
	elif test -z "${c_booted}"; then
		echo "cairn-boot: revision ${r}: no /boot/${r}/vmlinuz on virtio 0:2"
	fi
done
echo "cairn-boot: nothing to boot"
