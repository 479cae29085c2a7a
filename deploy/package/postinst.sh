#!/bin/sh
# ctwatch postinst: members of the ctwatch group may run ctwatch (and
# ctwatch doctor) without root, through a CAP_NET_ADMIN file capability.
# The binary is not world-executable: CAP_NET_ADMIN reads every host flow
# from the conntrack table and can take NFLOG groups from other readers,
# which is no power to hand every local user. ctwatch.service runs as a
# dynamic user in that group.
set -e
if [ "$1" = configure ]; then
	getent group ctwatch >/dev/null || groupadd --system ctwatch
	chown root:ctwatch /usr/bin/ctwatch
	chmod 0750 /usr/bin/ctwatch
	if ! setcap cap_net_admin+ep /usr/bin/ctwatch; then
		echo "ctwatch: setcap failed (no extended attributes here?);" \
			"run ctwatch as root or through ctwatch.service" >&2
	fi
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
exit 0
