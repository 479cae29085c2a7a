package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

const (
	unitFile = "systemd/ctwatch.service"
	envFile  = "systemd/ctwatch.default"
)

// unit is a parsed systemd unit file: section, then key, then every
// value the key was given, in order.
type unit map[string]map[string][]string

// parseUnit reads a unit file as systemd does for the parts this test
// needs: sections, comments, repeated keys and backslash continuations.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	var pending string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			pending = s
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is the value systemd uses for a key set more than once.
func (u unit) last(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// TestUnitHardening checks the settings the README promises for the
// service: CAP_NET_ADMIN and nothing else, no root, netlink allowed, the
// host network, a read-only system, and a system call filter.
func TestUnitHardening(t *testing.T) {
	u := parseUnit(t, unitFile)
	for _, tc := range []struct{ key, want string }{
		{"ExecStart", "/usr/bin/ctwatch $CTWATCH_ARGS"},
		{"EnvironmentFile", "-/etc/default/ctwatch"},
		{"DynamicUser", "yes"},
		// The package's /usr/bin/ctwatch is executable by this group
		// only.
		{"SupplementaryGroups", "ctwatch"},
		{"CapabilityBoundingSet", "CAP_NET_ADMIN"},
		{"AmbientCapabilities", "CAP_NET_ADMIN"},
		{"NoNewPrivileges", "yes"},
		// A private network namespace would hide the host's conntrack
		// table; a private user namespace would void CAP_NET_ADMIN.
		{"PrivateNetwork", "no"},
		{"PrivateUsers", "no"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"RestrictNamespaces", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"LockPersonality", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"SystemCallArchitectures", "native"},
	} {
		if got := u.last("Service", tc.key); got != tc.want {
			t.Errorf("[Service] %s=%q, want %q", tc.key, got, tc.want)
		}
	}

	families := strings.Fields(u.last("Service", "RestrictAddressFamilies"))
	for _, want := range []string{"AF_NETLINK", "AF_INET", "AF_INET6"} {
		if !slices.Contains(families, want) {
			t.Errorf("RestrictAddressFamilies=%q lacks %s", families, want)
		}
	}
	if filters := u["Service"]["SystemCallFilter"]; !slices.Contains(filters, "@system-service") ||
		!slices.Contains(filters, "~@privileged") {
		t.Errorf("SystemCallFilter=%q, want @system-service and ~@privileged", filters)
	}
	// /proc/sys holds the conntrack settings ctwatch reads.
	if got := u.last("Service", "ProcSubset"); got == "pid" {
		t.Error("ProcSubset=pid hides /proc/sys")
	}
	for _, key := range []string{"User", "Group"} {
		if got := u.last("Service", key); got == "root" || got == "0" {
			t.Errorf("%s=%s: the service must not run as root", key, got)
		}
	}
	if got := u.last("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%q", got)
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildOut  []byte
)

// ctwatchBinary builds ctwatch once for the tests of this package.
func ctwatchBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "ctwatch-deploy-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "ctwatch"), "../cmd/ctwatch")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return filepath.Join(buildDir, "ctwatch")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// TestUnitVerify runs systemd-analyze on the unit. verify exits 0 on
// unknown keys and bad values, so any line it prints about the unit
// fails the test. The unit runs /usr/bin/ctwatch, which verify requires
// to exist: the copy checked here runs a freshly built one instead (the
// package test verifies the installed unit as it is).
func TestUnitVerify(t *testing.T) {
	privtest.RequireCommand(t, "systemd-analyze")
	bin := ctwatchBinary(t)
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ctwatch.service")
	text := strings.ReplaceAll(string(b), "ExecStart=/usr/bin/ctwatch ", "ExecStart="+bin+" ")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	VerifyUnit(t, path)
}

// VerifyUnit runs `systemd-analyze verify` and an offline security
// review on the unit at path and fails on any complaint.
func VerifyUnit(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), filepath.Base(path)) {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
	// The review scores exposure from 0 (locked down) to 10; the unit
	// scores 1.7. 2.0 leaves no room for a setting to be lost.
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes",
		"--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
}

// TestEnvironmentFile checks that the example /etc/default/ctwatch sets
// CTWATCH_ARGS to flags ctwatch accepts.
func TestEnvironmentFile(t *testing.T) {
	args := envArgs(t, envFile)
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--nflog-group") }) {
		t.Errorf("CTWATCH_ARGS %q gives no drop source", args)
	}
	bin := ctwatchBinary(t)
	cmd := exec.Command(bin, append(args, "--help")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ctwatch %s --help: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// envArgs reads CTWATCH_ARGS from an environment file and splits it as
// systemd splits an unquoted $VAR in ExecStart: at white space.
func envArgs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "CTWATCH_ARGS=")
		if ok {
			return strings.Fields(strings.Trim(v, `"`))
		}
	}
	t.Fatalf("%s sets no CTWATCH_ARGS", path)
	return nil
}
