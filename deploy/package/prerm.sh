#!/bin/sh
# ctwatch prerm: stop and disable the service before its binary goes.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl --no-reload disable --now ctwatch.service >/dev/null 2>&1 || true
fi
exit 0
