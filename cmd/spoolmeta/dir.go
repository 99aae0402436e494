package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// dirFlag defines the -d flag on fs.
func dirFlag(fs *flag.FlagSet) *string {
	return fs.String("d", "", "the metadata `DIR`ectory or postgres:// URL (default $SPOOLMETA_DIR, else ./metadata)")
}

// metadataDir returns the location the command works on: a directory or a
// database URL.
func metadataDir(e *env, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := e.getenv("SPOOLMETA_DIR"); v != "" {
		return v
	}
	return "metadata"
}

// checkMetadataDir returns an error unless dir holds every state directory.
func checkMetadataDir(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no such directory %s (use -d or $SPOOLMETA_DIR)", dir)
	}
	for _, s := range metastorage.States() {
		fi, err := os.Lstat(filepath.Join(dir, s.String()))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s is not a metadata directory (no %s/ in it)", dir, s)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a metadata directory (%s is not a directory)", dir, s)
		}
	}
	return nil
}

// logger returns the logger of the backends the command opens: errors the
// backend cannot return go to stderr.
func logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelError}))
}

// openReadOnly opens the location loc, a directory or a database URL, for
// reading: it creates nothing, repairs nothing and takes no locks, and
// refuses a location that holds no spool.
func openReadOnly(e *env, loc string) (*location, error) {
	return openLocation(context.Background(), loc, modeReadOnly, logger(e.stderr))
}

// openReadOnlyLogged is openReadOnly with the backend's warnings going to
// sk, which counts the message files skipped.
func openReadOnlyLogged(_ *env, loc string, sk *skipLog) (*location, error) {
	return openLocation(context.Background(), loc, modeReadOnly, slog.New(sk))
}

// skipLog is the log handler of a listing command: it prints the backend's
// warnings and errors on stderr, each once, and counts the message files
// skipped. A file that several reads of a state skip counts once.
type skipLog struct {
	w     io.Writer
	cmd   string
	attrs []slog.Attr
	mu    *sync.Mutex     // guards seen, skipped and w: readers log from several goroutines
	seen  map[string]bool // the lines printed
	// skipped counts the distinct lines of skipped files.
	skipped *int
}

func newSkipLog(w io.Writer, cmd string) *skipLog {
	return &skipLog{w: w, cmd: cmd, mu: new(sync.Mutex), seen: make(map[string]bool), skipped: new(int)}
}

func (h *skipLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *skipLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", h.cmd, r.Message)
	attr := func(a slog.Attr) bool {
		fmt.Fprintf(&b, "; %s: %s", a.Key, escape(a.Value.String()))
		return true
	}
	for _, a := range h.attrs {
		attr(a)
	}
	r.Attrs(attr)
	b.WriteString("\n")
	line := b.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[line] {
		return nil
	}
	h.seen[line] = true
	if strings.HasPrefix(r.Message, "skipping") {
		*h.skipped++
	}
	_, err := io.WriteString(h.w, line)
	return err
}

func (h *skipLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clip(h.attrs), attrs...)
	return &c
}

func (h *skipLog) WithGroup(string) slog.Handler { return h }

// summary prints the summary line of the listing on stderr: what was
// listed or, if that is set, empty. Unless files were skipped, which makes
// it a partial result, it prints nothing when quiet.
func (h *skipLog) summary(what, empty string, quiet bool) error {
	if empty != "" {
		what = empty
	}
	if *h.skipped == 0 {
		if !quiet {
			fmt.Fprintf(h.w, "%s: %s\n", h.cmd, what)
		}
		return nil
	}
	if what == "" {
		what = "counted the rest"
	}
	fmt.Fprintf(h.w, "%s: %s; %s skipped: unreadable or not valid metadata (see above; fsck says more)\n", h.cmd, what, plural(*h.skipped, "message file"))
	return errSilentPartial
}

// openWritable opens the location loc for changes. It too refuses a
// location that holds no spool, so that a mistyped -d creates nothing.
func openWritable(e *env, loc string) (*location, error) {
	return openLocation(context.Background(), loc, modeWritable, logger(e.stderr))
}

// parseState parses a state name, as a usage error listing the valid names.
func parseState(name string) (metastorage.QueueState, error) {
	s, err := metastorage.ParseQueueState(strings.ToLower(name))
	if err != nil {
		return 0, usagef("unknown state %q (valid: %s)", name, stateNames())
	}
	return s, nil
}

// parseStates parses state names, each state once; none means every
// state.
func parseStates(names []string) ([]metastorage.QueueState, error) {
	if len(names) == 0 {
		return metastorage.States(), nil
	}
	var states []metastorage.QueueState
	for _, n := range names {
		s, err := parseState(n)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(states, s) {
			states = append(states, s)
		}
	}
	return states, nil
}

func stateNames() string {
	var names []string
	for _, s := range metastorage.States() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ")
}
