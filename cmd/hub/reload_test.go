package main

import (
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/internal/hubtest"
)

func TestPasswd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	passwd := func(stdin string, args ...string) (string, error) {
		var out strings.Builder
		err := runPasswd(append([]string{"--users", path}, args...), strings.NewReader(stdin), &out)
		return out.String(), err
	}
	if _, err := passwd("a long password\n", "--user", "alice", "--password-stdin", "--read", "nodes/#", "--write", "nodes/+/relay/+/set"); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("users file %v %v: want mode 0600", info, err)
	}
	users, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	authz := auth.New(users)
	if _, err := authz.Authenticate("alice", "a long password"); err != nil || !authz.Allowed("alice", auth.Write, "nodes/m/relay/r/set") {
		t.Fatalf("alice as written: %v", err)
	}

	out, err := passwd("", "--user", "alice", "--no-password", "--token", "--readwrite", "lab/#")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(strings.TrimPrefix(out[strings.Index(out, "API token"):], "API token (shown once): "))
	users, _ = auth.Load(path)
	authz = auth.New(users)
	if id, err := authz.AuthenticateToken(token); err != nil || id != "alice" {
		t.Fatalf("the printed token: %q %v (output %q)", id, err, out)
	}
	if _, err := authz.Authenticate("alice", "a long password"); err != nil {
		t.Fatal("--no-password must keep the password")
	}
	if authz.Allowed("alice", auth.Read, "nodes/x") || !authz.Allowed("alice", auth.Write, "lab/x") {
		t.Fatal("new rules must replace the old ones")
	}
	if _, err := passwd("", "--user", "anonymous", "--read", "public/#"); err != nil {
		t.Fatalf("anonymous takes no password: %v", err)
	}

	before, _ := os.ReadFile(path)
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"--user", "bob"}, "--password-stdin"},
		{"short\n", []string{"--user", "bob", "--password-stdin"}, "at least 8"},
		{"a long password\n", []string{"--user", "bob", "--password-stdin", "--read", "a/#/b"}, `--read a/#/b: '+' and '#' must fill a whole level`},
		{"", []string{"--user", "bob", "--delete"}, `no user "bob"`},
		{"", []string{"--user", "a:b", "--no-password"}, "no ':'"},
	} {
		if _, err := passwd(c.stdin, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("hub passwd %v: %v, want an error about %q", c.args, err, c.want)
		}
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a refused change rewrote the file")
	}
	if _, err := passwd("", "--user", "alice", "--delete"); err != nil {
		t.Fatal(err)
	}
	if users, _ := auth.Load(path); len(users.Names()) != 1 {
		t.Fatalf("after deleting alice: %v", users.Names())
	}
}

// TestSIGHUPReloadsUsersAndCertificate: the real binary, told SIGHUP after
// `hub passwd --delete` and a new certificate, ends the removed user's
// session (4003) and keeps the others, serves the new certificate, and
// refuses a broken users file without harm.
func TestSIGHUPReloadsUsersAndCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHub(t)
	users, _ := writeUsers(t, false)
	certs := hubtest.NewTLSFiles(t, 1)
	cmd, out, exited := startProcess(t, bin, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0",
		"--users", users, "--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile)
	var httpsAddr, mqttAddr string
	for _, m := range listeningLine.FindAllStringSubmatch(out.String(), -1) {
		switch m[1] {
		case "https":
			httpsAddr = m[2]
		case "mqtt":
			mqttAddr = m[2]
		}
	}

	newCerts := hubtest.NewTLSFiles(t, 2)
	trust := certs.ClientConfig()
	trust.RootCAs.AppendCertsFromPEM(mustRead(t, newCerts.CAFile))
	dial := func(user, password string) *hubtest.WS {
		d := websocket.Dialer{TLSClientConfig: trust, HandshakeTimeout: hubtest.Timeout}
		conn, _, err := d.Dial("wss://"+httpsAddr+"/ws", http.Header{"Authorization": {basic(user, password)}})
		if err != nil {
			t.Fatalf("WSS as %s: %v", user, err)
		}
		ws := hubtest.WrapWS(t, conn)
		ws.Send(`["clown.talk/-/config/set", {"subscribe": ["nodes/#"]}]`)
		ws.Expect("clown.talk/-/config/ok")
		return ws
	}
	alice := dial("alice", alicePassword)
	viewer := dial("viewer", viewerPassword)

	if out, err := exec.Command(bin, "passwd", "--users", users, "--user", "alice", "--delete").CombinedOutput(); err != nil {
		t.Fatalf("hub passwd --delete: %v\n%s", err, out)
	}
	for src, dst := range map[string]string{newCerts.CertFile: certs.CertFile, newCerts.KeyFile: certs.KeyFile} {
		if err := os.WriteFile(dst, mustRead(t, src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	if _, err := alice.TryReadLine(hubtest.Timeout); !websocket.IsCloseError(err, 4003) {
		t.Fatalf("the removed user's session: %v, want close 4003 revoked", err)
	}
	ops, err := hubtest.ConnectMQTTAs(mqttAddr, "ops", "ops", opsPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Disconnect(0)
	hubtest.PublishMQTT(t, ops, "nodes/after/reload", 1, false, []byte("1"))
	if f := viewer.Expect("nodes/after/reload"); string(f.Payload) != "1" {
		t.Fatalf("the user who stays: %s", f.Payload)
	}
	conn, err := tls.Dial("tcp", httpsAddr, trust)
	if err != nil {
		t.Fatal(err)
	}
	serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	conn.Close()
	if serial != 2 {
		t.Fatalf("after SIGHUP the hub serves certificate %d, want the new one (2)", serial)
	}
	for _, line := range []string{"users reloaded", "TLS certificate reloaded"} {
		if !strings.Contains(out.String(), line) {
			t.Fatalf("no %q in the log:\n%s", line, out)
		}
	}

	if err := os.WriteFile(users, []byte("[users.x]\npassword = \"not a hash\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return strings.Contains(out.String(), "users file not reloaded") },
		"a broken users file was not reported:\n%s", out)
	hubtest.PublishMQTT(t, ops, "nodes/still/there", 1, false, []byte("2"))
	viewer.Expect("nodes/still/there")

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not exit within 10 s of SIGTERM")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
