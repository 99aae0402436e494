package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
)

// binary is the spoolmeta binary that TestMain builds for the tests.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(moverEnv) != "" {
		os.Exit(moverMain())
	}
	if os.Getenv(updaterEnv) != "" {
		os.Exit(updaterMain())
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "spoolmeta-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(tmp)
	// Other users may run it (see TestUnreadableAsOtherUser).
	if err := os.Chmod(tmp, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	binary = filepath.Join(tmp, "spoolmeta")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 2
	}
	return m.Run()
}

// result is what a run of the binary printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// testNow is the time the tests run at, as far as spoolmeta knows.
const testNow = "2026-11-20T08:36:00Z"

// spoolmeta runs the binary with args in a fixed environment: UTC, 120
// columns, now at testNow and no $SPOOLMETA_DIR.
func spoolmeta(t *testing.T, args ...string) result {
	t.Helper()
	return spoolmetaIn(t, "", nil, args...)
}

// spoolmetaIn is spoolmeta with stdin and extra environment variables.
func spoolmetaIn(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(testEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run spoolmeta %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "SPOOLMETA_DIR", "SPOOLMETA_NOW", "TZ", "COLUMNS":
		default:
			env = append(env, kv)
		}
	}
	return append(env, "TZ=UTC", "COLUMNS=120", "SPOOLMETA_NOW="+testNow)
}

// expect fails the test unless r has exit status code; it shows r.
func (r result) expect(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

// fixture copies the shared fixture name into a new temporary directory
// and returns the copy's path; it skips t where the tool cannot open it.
func fixture(t *testing.T, name string) string {
	t.Helper()
	spooltest.NeedDisk(t)
	return spooltest.Fixture(t, name)
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
