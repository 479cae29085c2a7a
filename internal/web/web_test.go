package web

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// syncBuffer is a log sink safe for the server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. The port is released before Serve binds it again; another process
// could take it in between, which is unlikely enough on a test machine.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testRegistry holds one counter so a scrape shows where it came from.
func testRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ctwatch_test_total", Help: "A counter for the web tests.",
	})
	c.Add(7)
	reg.MustRegister(c)
	return reg
}

// server is a Serve call running in the background.
type server struct {
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer

	once sync.Once
	err  error
}

// stop cancels Serve's context and returns what Serve returned; the
// second and later calls return the same.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(10 * time.Second):
			s.err = errors.New("Serve did not return within 10 s of cancel")
		}
	})
	return s.err
}

// start runs Serve with cfg and waits until every address answers.
func start(t *testing.T, cfg Config, client *http.Client, scheme string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { s.done <- Serve(ctx, cfg, testRegistry(t), logger) }()
	t.Cleanup(func() {
		if err := s.stop(t); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	for _, addr := range cfg.ListenAddresses {
		waitUp(t, s, client, scheme+"://"+addr+"/")
	}
	return s
}

// waitUp polls url until the server answers at all.
func waitUp(t *testing.T, s *server, client *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-s.done:
			t.Fatalf("Serve returned early: %v\nlogs:\n%s", err, s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up: %v\nlogs:\n%s", url, err, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, client *http.Client, url string, auth ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestServePlain(t *testing.T) {
	tests := []struct {
		name          string
		telemetryPath string
		metricsPath   string
	}{
		{"default path", "", "/metrics"},
		{"custom path", "/custom/metrics", "/custom/metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := freeAddr(t)
			client := &http.Client{Timeout: 5 * time.Second}
			cfg := Config{ListenAddresses: []string{addr}, TelemetryPath: tt.telemetryPath}
			start(t, cfg, client, "http")
			base := "http://" + addr

			code, body := get(t, client, base+tt.metricsPath)
			if code != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", tt.metricsPath, code)
			}
			for _, want := range []string{
				"ctwatch_test_total 7",
				"promhttp_metric_handler_requests_total",
				"promhttp_metric_handler_errors_total",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("scrape lacks %q:\n%s", want, body)
				}
			}

			code, body = get(t, client, base+"/")
			if code != http.StatusOK {
				t.Fatalf("GET / = %d, want 200", code)
			}
			link := strings.TrimPrefix(tt.metricsPath, "/")
			if !strings.Contains(body, "ctwatch") || !strings.Contains(body, link) {
				t.Errorf("landing page lacks the name or the metrics link:\n%s", body)
			}

			if code, _ := get(t, client, base+"/nowhere"); code != http.StatusNotFound {
				t.Errorf("GET /nowhere = %d, want 404", code)
			}
		})
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	addr := freeAddr(t)
	client := &http.Client{Timeout: 5 * time.Second}
	s := start(t, Config{ListenAddresses: []string{addr}}, client, "http")

	began := time.Now()
	if err := s.stop(t); err != nil {
		t.Fatalf("Serve = %v after cancel, want nil", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if _, err := client.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestServeErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	badConfig := filepath.Join(t.TempDir(), "web.yml")
	bad := []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n")
	if err := os.WriteFile(badConfig, bad, 0o600); err != nil {
		t.Fatal(err)
	}

	addrs := func(extra ...string) []string { return append([]string{freeAddr(t)}, extra...) }
	tests := []struct {
		name      string
		cfg       Config
		wantErrIs error
	}{
		{"no address", Config{}, ErrConfig},
		{"relative telemetry path",
			Config{ListenAddresses: addrs(), TelemetryPath: "metrics"}, ErrConfig},
		{"bad web config",
			Config{ListenAddresses: addrs(), ConfigFile: badConfig}, ErrConfig},
		{"missing web config",
			Config{ListenAddresses: addrs(), ConfigFile: "/nonexistent/web.yml"}, ErrConfig},
		{"port in use",
			Config{ListenAddresses: addrs(busy.Addr().String())}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				done <- Serve(context.Background(), tt.cfg, testRegistry(t), slog.New(slog.DiscardHandler))
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Serve = nil, want an error")
				}
				if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
					t.Errorf("Serve = %v, want one wrapping %v", err, tt.wantErrIs)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not fail")
			}
		})
	}
}

// tlsFixture writes a self-signed certificate for 127.0.0.1 and a web
// configuration file enabling TLS and basic auth for user:password.
func tlsFixture(t *testing.T, user, password string) (configFile string, roots *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ctwatch test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePEM := func(path, typ string, b []byte) {
		t.Helper()
		block := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
		if err := os.WriteFile(path, block, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePEM(certFile, "CERTIFICATE", der)
	writePEM(keyFile, "EC PRIVATE KEY", keyDER)

	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	configFile = filepath.Join(dir, "web.yml")
	config := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n"+
		"basic_auth_users:\n  %s: %s\n", certFile, keyFile, user, hash)
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return configFile, roots
}

func TestServeTLSAndBasicAuth(t *testing.T) {
	configFile, roots := tlsFixture(t, "prometheus", "s3cret")
	addrs := []string{freeAddr(t), freeAddr(t)}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	start(t, Config{ListenAddresses: addrs, ConfigFile: configFile}, client, "https")

	for _, addr := range addrs {
		t.Run(addr, func(t *testing.T) {
			url := "https://" + addr + "/metrics"
			tests := []struct {
				name string
				auth []string
				want int
			}{
				{"right password", []string{"prometheus", "s3cret"}, http.StatusOK},
				{"wrong password", []string{"prometheus", "guess"}, http.StatusUnauthorized},
				{"unknown user", []string{"root", "s3cret"}, http.StatusUnauthorized},
				{"no credentials", nil, http.StatusUnauthorized},
			}
			for _, tt := range tests {
				code, body := get(t, client, url, tt.auth...)
				if code != tt.want {
					t.Errorf("%s: status %d, want %d", tt.name, code, tt.want)
				}
				served := strings.Contains(body, "ctwatch_test_total")
				if served != (tt.want == http.StatusOK) {
					t.Errorf("%s: metrics in body = %v", tt.name, served)
				}
			}

			// Plain HTTP to the TLS port gets no metrics: Go's server
			// answers 400 to a request that is not a TLS handshake.
			plain := &http.Client{Timeout: 5 * time.Second}
			resp, err := plain.Get("http://" + addr + "/metrics")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "ctwatch_test_total") {
					t.Errorf("plain HTTP against TLS: status %d, body %q", resp.StatusCode, body)
				}
			}

			// A client that does not trust the certificate fails the
			// handshake.
			untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
			if _, err := untrusting.Get(url); err == nil {
				t.Error("TLS handshake succeeded without trusting the certificate")
			}
		})
	}
}

func TestAddFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want Config
	}{
		{
			name: "defaults",
			want: Config{ListenAddresses: []string{DefaultListenAddress}, TelemetryPath: "/metrics"},
		},
		{
			name: "repeated addresses",
			args: []string{
				"--web.listen-address=127.0.0.1:9999", "--web.listen-address=[::1]:9999",
				"--web.config.file=/etc/ctwatch/web.yml", "--web.telemetry-path=/m",
			},
			want: Config{
				ListenAddresses: []string{"127.0.0.1:9999", "[::1]:9999"},
				ConfigFile:      "/etc/ctwatch/web.yml",
				TelemetryPath:   "/m",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := kingpin.New("ctwatch", "")
			flags := AddFlags(app)
			if _, err := app.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got := flags.Config()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Config() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
