package spoolmeta_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExample proves that the README's usage example is the code of
// Example in filesystem/example_test.go, which runs as a test, and that
// the README stays within its length.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("filesystem/example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "func Example() {")
	if start < 0 {
		t.Fatal("filesystem/example_test.go has no func Example")
	}
	end := strings.Index(s[start:], "\n}\n")
	if end < 0 {
		t.Fatal("func Example in filesystem/example_test.go does not end")
	}
	example := s[start : start+end+2]
	if !strings.Contains(string(readme), "```go\nimport (") || !strings.Contains(string(readme), example) {
		t.Errorf("README.md does not show func Example of filesystem/example_test.go as it is:\n%s", example)
	}
	if n := len(readme); n > 15000 {
		t.Errorf("README.md has %d bytes, want at most 15,000", n)
	}
}
