package events

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// procTree writes a fake procRoot holding the given netfilter sysctls.
func procTree(t *testing.T, sysctls map[string]string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "net", "netfilter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range sysctls {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadUDPTimeouts(t *testing.T) {
	tests := []struct {
		name        string
		udp, stream string
		want        UDPTimeouts
		wantErr     bool
	}{
		{name: "defaults", udp: "30\n", stream: "120\n",
			want: UDPTimeouts{Timeout: 30 * time.Second, StreamTimeout: 120 * time.Second}},
		{name: "no newline", udp: "5", stream: "7",
			want: UDPTimeouts{Timeout: 5 * time.Second, StreamTimeout: 7 * time.Second}},
		{name: "garbage", udp: "thirty", stream: "120", wantErr: true},
		{name: "negative", udp: "30", stream: "-1", wantErr: true},
		{name: "empty", udp: "", stream: "120", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := procTree(t, map[string]string{
				"nf_conntrack_udp_timeout":        tt.udp,
				"nf_conntrack_udp_timeout_stream": tt.stream,
			})
			got, err := ReadUDPTimeouts(root)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		_, err := ReadUDPTimeouts(t.TempDir())
		if !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrNoConntrack) {
			t.Errorf("err = %v, want one wrapping os.ErrNotExist and ErrNoConntrack", err)
		}
	})
}

func TestReadKernelSettings(t *testing.T) {
	root := procTree(t, map[string]string{
		"nf_conntrack_timestamp":          "1\n",
		"nf_conntrack_acct":               "0\n",
		"nf_conntrack_events":             "2\n",
		"nf_conntrack_udp_timeout":        "30\n",
		"nf_conntrack_udp_timeout_stream": "120\n",
	})
	got, err := ReadKernelSettings(root)
	if err != nil {
		t.Fatal(err)
	}
	want := KernelSettings{Timestamp: true, Events: 2,
		UDP: UDPTimeouts{Timeout: 30 * time.Second, StreamTimeout: 120 * time.Second}}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	if _, err := ReadKernelSettings(t.TempDir()); !errors.Is(err, ErrNoConntrack) {
		t.Errorf("empty /proc: err = %v, want one wrapping ErrNoConntrack", err)
	}
}
