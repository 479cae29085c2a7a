#!/bin/sh
# ctwatch postrm: forget the unit; on purge, remove the group postinst
# made, so a purge leaves the machine as it was before the install.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
if [ "$1" = purge ] && getent group ctwatch >/dev/null; then
	groupdel ctwatch || true
fi
exit 0
