package web

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childEnv marks the re-executed test binary that plays the service
// systemd started.
const childEnv = "CTWATCH_WEB_SYSTEMD_CHILD"

// TestSystemdSocketChild is the child side of TestSystemdSocket. Run any
// other way it does nothing and passes.
func TestSystemdSocketChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		return
	}
	// systemd sets LISTEN_PID to the service's pid, which the parent
	// could not know before starting us.
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := Serve(ctx, Config{SystemdSocket: true}, testRegistry(t), logger); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestSystemdSocket passes a listening socket the way systemd does (fd 3,
// LISTEN_FDS=1) to a child that serves with --web.systemd-socket.
func TestSystemdSocket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSystemdSocketChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1", "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{f}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child has its own copy of the socket now.
	f.Close()
	l.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	reaped := false
	defer func() {
		if !reaped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := 0, ""
		if resp, err := client.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		}
		if code == http.StatusOK && strings.Contains(body, "ctwatch_test_total 7") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics on the systemd socket (last status %d)\nchild:\n%s", code, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		reaped = true
		if err != nil {
			t.Errorf("child: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("child still running 10 s after SIGINT\n%s", out.String())
	}
}
