package cli

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/rest"
)

const twoClusterKubeconfig = `apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: {server: "https://dev.example:6443"}
- name: prod
  cluster: {server: "https://prod.example:6443", tls-server-name: prod-api}
users:
- name: dev-user
  user: {token: dev-token}
- name: admin
  user: {token: admin-token}
contexts:
- name: dev
  context: {cluster: dev, user: dev-user}
`

// connect parses args as a command with the connection flags and returns
// the rest.Config they give (files are not read yet).
func connect(t *testing.T, args ...string) (*rest.Config, error) {
	t.Helper()
	var config *rest.Config
	app := &cli.App{
		Flags: connectionFlags(false),
		Action: func(c *cli.Context) error {
			conn, err := connectionFrom(c)
			if err != nil {
				return err
			}
			if cs := c.StringSlice("context"); len(cs) > 0 {
				conn.Context = cs[0]
			}
			config, err = conn.clientConfig().ClientConfig()
			return err
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return UsageError{Err: err} },
	}
	return config, app.Run(append([]string{"relabel"}, args...))
}

func TestKubectlFlagsOverrideTheKubeconfig(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "config")
	ca := filepath.Join(dir, "ca.crt")
	for path, data := range map[string]string{kubeconfig: twoClusterKubeconfig, ca: "not parsed before a request"} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *rest.Config)
	}{
		{"the kubeconfig alone", nil, func(t *testing.T, c *rest.Config) {
			if c.Host != "https://dev.example:6443" || c.BearerToken != "dev-token" || c.Impersonate.UserName != "" {
				t.Errorf("host %s token %q impersonate %+v", c.Host, c.BearerToken, c.Impersonate)
			}
		}},
		{"--server and --token win", []string{"--server", "https://other.example", "--token", "flag-token"}, func(t *testing.T, c *rest.Config) {
			if c.Host != "https://other.example" || c.BearerToken != "flag-token" {
				t.Errorf("host %s token %q", c.Host, c.BearerToken)
			}
		}},
		{"--cluster and --user pick other kubeconfig entries", []string{"--cluster", "prod", "--user", "admin"}, func(t *testing.T, c *rest.Config) {
			if c.Host != "https://prod.example:6443" || c.BearerToken != "admin-token" || c.ServerName != "prod-api" {
				t.Errorf("host %s token %q server name %q", c.Host, c.BearerToken, c.ServerName)
			}
		}},
		{"--tls-server-name, --certificate-authority", []string{"--tls-server-name", "api.internal", "--certificate-authority", ca}, func(t *testing.T, c *rest.Config) {
			if c.ServerName != "api.internal" || c.CAFile != ca {
				t.Errorf("server name %q CA %q", c.ServerName, c.CAFile)
			}
		}},
		{"--insecure-skip-tls-verify", []string{"--insecure-skip-tls-verify"}, func(t *testing.T, c *rest.Config) {
			if !c.Insecure {
				t.Error("not insecure")
			}
		}},
		{"impersonation", []string{"--as", "jane", "--as-group", "devs", "--as-group", "ops", "--as-uid", "42"}, func(t *testing.T, c *rest.Config) {
			if c.Impersonate.UserName != "jane" || !slices.Equal(c.Impersonate.Groups, []string{"devs", "ops"}) || c.Impersonate.UID != "42" {
				t.Errorf("impersonate %+v", c.Impersonate)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config, err := connect(t, append([]string{"--kubeconfig", kubeconfig}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, config)
		})
	}
}

func TestKubectlFlagsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--as-group", "devs"},
		{"--as-uid", "42"},
		{"--certificate-authority", "/nonexistent/ca.crt"},
		{"--client-certificate", "/nonexistent/c.crt", "--client-key", "/nonexistent/c.key"},
	} {
		t.Run(args[0], func(t *testing.T) {
			_, err := connect(t, args...)
			if !errors.As(err, new(UsageError)) {
				t.Errorf("relabel %v: %v, want a usage error", args, err)
			}
		})
	}
}
