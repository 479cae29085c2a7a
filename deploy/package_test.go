package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

// packaged lists what the package installs, with the repository file
// each must equal ("" for the binary).
var packaged = []struct{ path, source string }{
	{"/usr/bin/ctwatch", ""},
	{"/usr/lib/systemd/system/ctwatch.service", unitFile},
	{"/etc/default/ctwatch", envFile},
	{"/usr/share/ctwatch/prometheus/ctwatch-rules.yml", rulesFile},
	{"/usr/share/ctwatch/grafana/ctwatch.json", "../dashboards/ctwatch.json"},
	{"/usr/share/doc/ctwatch/README.md", "../README.md"},
}

// TestPackage builds the Debian package with scripts/package, installs it
// on this machine with dpkg, runs the installed ctwatch, checks its files,
// its file capability and its unit, and purges it again. It refuses to
// touch a machine where ctwatch is already installed.
func TestPackage(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "dpkg", "dpkg-query", "setcap", "getcap", "setpriv", "go", "git")
	if exec.Command("dpkg-query", "-W", "ctwatch").Run() == nil {
		t.Fatal("a ctwatch package is installed already; this test would replace it")
	}
	for _, f := range packaged {
		if _, err := os.Lstat(f.path); err == nil {
			t.Fatalf("%s exists already; this test would overwrite it", f.path)
		}
	}

	start := time.Now()
	cmd := exec.Command("../scripts/package", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, stderr.String())
	}
	deb := strings.TrimSpace(string(out))
	t.Logf("built %s in %v", filepath.Base(deb), time.Since(start).Round(time.Millisecond))

	run(t, "dpkg", "-i", deb)
	t.Cleanup(func() {
		run(t, "dpkg", "--purge", "ctwatch")
		for _, f := range packaged {
			if _, err := os.Lstat(f.path); err == nil {
				t.Errorf("%s is left after the purge", f.path)
			}
		}
		if exec.Command("getent", "group", "ctwatch").Run() == nil {
			t.Error("the ctwatch group is left after the purge")
		}
	})

	version := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Version}", "ctwatch"))
	if got := run(t, "/usr/bin/ctwatch", "version"); !strings.Contains(got, "version "+version+" ") {
		t.Errorf("ctwatch version says\n%s\nwant version %s", got, version)
	}
	for _, f := range packaged {
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if f.source == "" {
			continue
		}
		want, err := os.ReadFile(f.source)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", f.path, f.source)
		}
	}
	if got := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "ctwatch"); !strings.Contains(got, "/etc/default/ctwatch ") {
		t.Errorf("conffiles %q lack /etc/default/ctwatch", got)
	}

	// The binary: group ctwatch may run it, others may not, and it
	// carries CAP_NET_ADMIN.
	st, err := os.Stat("/usr/bin/ctwatch")
	if err != nil {
		t.Fatal(err)
	}
	gid := strings.Split(strings.TrimSpace(run(t, "getent", "group", "ctwatch")), ":")[2]
	if sys := st.Sys().(*syscall.Stat_t); st.Mode().Perm() != 0o750 || sys.Uid != 0 ||
		gid != strconv.FormatUint(uint64(sys.Gid), 10) {
		t.Errorf("/usr/bin/ctwatch: mode %v uid %d gid %d, want 0750 root:ctwatch (%s)",
			st.Mode().Perm(), sys.Uid, sys.Gid, gid)
	}
	if got := run(t, "getcap", "/usr/bin/ctwatch"); !strings.Contains(got, "cap_net_admin=ep") {
		t.Errorf("getcap: %q, want cap_net_admin=ep", got)
	}
	// A member of the group with no capabilities of its own gets
	// CAP_NET_ADMIN from the file: doctor's capability check passes.
	doc := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--groups="+gid,
		"--inh-caps=-all", "--ambient-caps=-all", "/usr/bin/ctwatch", "doctor", "--format", "json")
	doc.Dir = "/"
	js, _ := doc.Output() // exits 1 when this machine's ruleset has gaps
	var rep struct {
		Checks []struct{ Check, Status, Detail string }
	}
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatalf("doctor as group ctwatch: %v\n%s", err, js)
	}
	for _, c := range rep.Checks {
		if (c.Check == "capabilities" || c.Check == "conntrack-events") && c.Status != "ok" {
			t.Errorf("doctor as group ctwatch: %s %s: %s", c.Check, c.Status, c.Detail)
		}
	}

	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		VerifyUnit(t, "/usr/lib/systemd/system/ctwatch.service")
	}
}

// run runs a command and returns its standard output; it fails the test
// if the command fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
