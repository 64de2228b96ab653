package testcluster

import (
	"os"
	"testing"
)

// EnvHelm names the helm binary the Helm tests run; make test sets it to the
// one cluster.sh helm-bin builds.
const EnvHelm = "RELABEL_TEST_HELM"

// Helm returns the path of the helm binary EnvHelm names. Without it the test
// is skipped in -short mode and fails otherwise, so that a run meant to cover
// Helm never passes without it.
func Helm(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvHelm)
	if path == "" {
		if testing.Short() {
			t.Skipf("needs Helm: %s is unset (skipped in -short mode)", EnvHelm)
		}
		t.Fatalf("needs Helm: set %s to a helm binary, e.g. %s=$(bash internal/cluster/cluster.sh helm-bin)", EnvHelm, EnvHelm)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: %v", EnvHelm, err)
	}
	return path
}
