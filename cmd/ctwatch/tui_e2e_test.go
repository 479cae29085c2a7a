package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

// tmuxServer is a tmux server of the test's own, on its own socket, so
// that it never touches the user's sessions.
type tmuxServer struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T) *tmuxServer {
	t.Helper()
	s := &tmuxServer{t: t, socket: fmt.Sprintf("ctwatch-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() {
		// The server may already be gone with its last session.
		_ = exec.Command("tmux", "-L", s.socket, "kill-server").Run()
	})
	return s
}

// run runs a tmux command on the test's server and returns its output.
func (s *tmuxServer) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command("tmux", append([]string{"-L", s.socket, "-f", "/dev/null"}, args...)...)
	if os.Getenv("TERM") == "" {
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFor captures the pane (with its history when history is set) until
// it contains want, and returns the capture.
func (s *tmuxServer) waitFor(target, want string, history bool, timeout time.Duration) string {
	s.t.Helper()
	args := []string{"capture-pane", "-p", "-t", target}
	if history {
		args = append(args, "-S", "-")
	}
	deadline := time.Now().Add(timeout)
	for {
		screen := s.run(args...)
		if strings.Contains(screen, want) {
			return screen
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%q not on screen after %v; screen:\n%s", want, timeout, screen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var (
	screenCount = func(class string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + class + `\s+([\d,]+)\s`)
	}
	screenLate        = screenCount("late")
	screenUnsolicited = screenCount("unsolicited")
	screenAdvice      = regexp.MustCompile(`A UDP timeout of (\d+) s would have accepted 99%`)
	screenAdviceCount = regexp.MustCompile(`accepted 99% of the ([\d,]+) late`)
)

// screenNumber returns the number re's first group finds on screen.
func screenNumber(t *testing.T, screen string, re *regexp.Regexp) int {
	t.Helper()
	m := re.FindStringSubmatch(screen)
	if m == nil {
		t.Fatalf("no match for %s on screen:\n%s", re, screen)
	}
	n, err := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLiveViewDemo runs `ctwatch demo` on a terminal (a detached tmux
// session of 120x40): the live view must show the lab's late and
// unsolicited counts and a timeout recommendation once the demo has
// finished, and the ground-truth report printed after q must agree with
// the counts on screen.
func TestLiveViewDemo(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "tmux", "ip", "nft")

	bin := filepath.Join(t.TempDir(), "ctwatch")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	const udpTimeout = 3 // seconds, the demo's default
	tm := startTmux(t)
	// The shell keeps the pane open after ctwatch exits, with its status.
	cmd := fmt.Sprintf("%s demo --duration=8s --rate=20 --udp-timeout=%ds --web.disable; "+
		"echo ctwatch-exit=$?; sleep 600", bin, udpTimeout)
	tm.run("new-session", "-d", "-s", "demo", "-x", "120", "-y", "40", cmd)

	screen := tm.waitFor("demo", "Demo finished", false, 45*time.Second)
	t.Logf("live view at the end of the demo:\n%s", screen)
	late := screenNumber(t, screen, screenLate)
	unsolicited := screenNumber(t, screen, screenUnsolicited)
	timeout := screenNumber(t, screen, screenAdvice)
	if late < 10 || unsolicited == 0 {
		t.Errorf("screen shows %d late and %d unsolicited, want at least 10 and 1", late, unsolicited)
	}
	// The lab's answers come at most 8 s after expiry (late-after-gc),
	// so the advice lies between the timeout and 9 s above it.
	if timeout <= udpTimeout || timeout > udpTimeout+9 {
		t.Errorf("recommended timeout %d s, want in (%d, %d] s", timeout, udpTimeout, udpTimeout+9)
	}
	if n := screenNumber(t, screen, screenAdviceCount); n != late {
		t.Errorf("advice is based on %d late answers, screen counts %d", n, late)
	}

	tm.run("send-keys", "-t", "demo", "q")
	after := tm.waitFor("demo", "ctwatch-exit=", true, 15*time.Second)
	t.Logf("after q:\n%s", after)
	if !strings.Contains(after, "ctwatch-exit=0") {
		t.Errorf("ctwatch did not exit with 0:\n%s", after)
	}
	counts := truthCounts(t, after)
	for _, c := range []struct {
		name   string
		screen int
		truth  int
		got    int
	}{
		{"late", late,
			counts["late/answered"][0] + counts["late/unanswered"][0],
			counts["late/answered"][1] + counts["late/unanswered"][1]},
		{"unsolicited", unsolicited, counts["unsolicited"][0], counts["unsolicited"][1]},
	} {
		if c.screen != c.got || c.screen != c.truth {
			t.Errorf("%s: screen %d, report: ctwatch %d, ground truth %d", c.name, c.screen, c.got, c.truth)
		}
	}
}

// TestOutputTUIWithoutTerminal: asking for the live view with stdout not
// a terminal is a usage error, found before anything is opened.
func TestOutputTUIWithoutTerminal(t *testing.T) {
	for _, args := range [][]string{{"--output=tui"}, {"demo", "--output=tui"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
			err := e.run(t.Context(), args)
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "needs a terminal") {
				t.Errorf("run %v = %v (exit %d), want a usage error about the terminal",
					args, err, exitCode(err))
			}
		})
	}
}

// TestLogHold: while the view is shown, warnings and errors wait (with
// their attributes) and lower levels are dropped; release writes the
// waiting ones in order, and after it records pass straight through.
func TestLogHold(t *testing.T) {
	var buf strings.Builder
	hold := newLogHold(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
	}))
	log := slog.New(hold)
	sub := log.With("component", "nflog")

	log.Info("before")
	hold.hold()
	log.Info("hidden info")
	sub.Warn("overflow", "group", 1)
	log.Error("failed")
	if got := buf.String(); got != "level=INFO msg=before\n" {
		t.Errorf("written while held:\n%s", got)
	}
	if n := hold.heldCount(); n != 2 {
		t.Errorf("heldCount = %d, want 2", n)
	}
	hold.release()
	log.Info("after")
	want := "level=INFO msg=before\n" +
		"level=WARN msg=overflow component=nflog group=1\n" +
		"level=ERROR msg=failed\n" +
		"level=INFO msg=after\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

// TestLogHoldBound: a flood of warnings during the view keeps the first
// maxHeldLogs and says how many were lost.
func TestLogHoldBound(t *testing.T) {
	var buf strings.Builder
	hold := newLogHold(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
	}))
	log := slog.New(hold)
	hold.hold()
	for i := range maxHeldLogs + 5 {
		log.Warn("w", "i", i)
	}
	hold.release()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != maxHeldLogs+1 {
		t.Fatalf("%d lines written, want %d", len(lines), maxHeldLogs+1)
	}
	if want := fmt.Sprintf("i=%d", maxHeldLogs-1); !strings.HasSuffix(lines[maxHeldLogs-1], want) {
		t.Errorf("last held line %q, want it to end in %s", lines[maxHeldLogs-1], want)
	}
	if got := lines[maxHeldLogs]; !strings.Contains(got, "lost=5") {
		t.Errorf("closing line %q does not count the 5 lost", got)
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
