package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// record is the JSON form of a message's metadata. Its field names are
// stable: scripts depend on them.
type record struct {
	ID          string            `json:"id"`
	State       string            `json:"state"`
	Attempts    int               `json:"attempts"`
	MaxAttempts int               `json:"max_attempts"`
	NextRetry   *time.Time        `json:"next_retry"`
	Created     *time.Time        `json:"created"`
	Updated     *time.Time        `json:"updated"`
	LastError   string            `json:"last_error"`
	Size        int64             `json:"size"`
	Priority    int               `json:"priority"`
	Headers     map[string]string `json:"headers"`
	RetryPolicy string            `json:"retry_policy"`
}

// toRecord converts md to its JSON form; zero times become null.
func toRecord(md metastorage.MessageMetadata) record {
	h := md.Headers
	if h == nil {
		h = map[string]string{}
	}
	return record{
		ID: md.ID, State: md.State.String(), Attempts: md.Attempts, MaxAttempts: md.MaxAttempts,
		NextRetry: timePtr(md.NextRetry), Created: timePtr(md.Created), Updated: timePtr(md.Updated),
		LastError: md.LastError, Size: md.Size, Priority: md.Priority, Headers: h,
		RetryPolicy: md.RetryPolicyName,
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	data = append(data, '\n')
	_, err = w.Write(data)
	return err
}

// writeReadable writes md as "field: value" lines, with a blank line after.
func writeReadable(w io.Writer, md metastorage.MessageMetadata) error {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-13s %s\n", k+":", v) }
	line("id", escapeID(md.ID))
	line("state", md.State.String())
	line("attempts", fmt.Sprintf("%d of %d", md.Attempts, md.MaxAttempts))
	line("next retry", fullTime(md.NextRetry))
	line("created", fullTime(md.Created))
	line("updated", fullTime(md.Updated))
	line("last error", escape(md.LastError))
	line("size", fmt.Sprint(md.Size))
	line("priority", fmt.Sprint(md.Priority))
	line("retry policy", escape(md.RetryPolicyName))
	b.WriteString("headers:\n")
	for _, k := range slices.Sorted(maps.Keys(md.Headers)) {
		fmt.Fprintf(&b, "  %s: %s\n", escape(k), escape(md.Headers[k]))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// fullTime formats t in the local zone to the nanosecond, or "-" when it
// is zero.
func fullTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339Nano)
}

// shortTime formats t to the second for tables, or "-" when it is zero.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// tableTime formats t to the minute for ls, or "-" when it is zero.
func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

// shorten cuts s to at most n runes, marking the cut with "…", and
// replaces line breaks and tabs with spaces.
func shorten(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// oneLine returns s escaped for a table cell, with line breaks and tabs as
// spaces.
func oneLine(s string) string {
	return escape(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s))
}

// escape returns s with what a terminal would act on written as Go escapes:
// control and other unprintable characters (\n, \x1b, \u200b), bytes that
// are not UTF-8 (\xff), and the backslash itself (\\), so that text output
// keeps one row per line and shows every byte of an ID.
func escape(s string) string {
	clean := true
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// escapeID is escape for a message ID, which shows the empty ID as "".
func escapeID(id string) string {
	if id == "" {
		return `""`
	}
	return escape(id)
}

// plural returns "n word" with an s for any n but 1.
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// pad pads s with spaces to n runes.
func pad(s string, n int) string {
	if c := utf8.RuneCountInString(s); c < n {
		return s + strings.Repeat(" ", n-c)
	}
	return s
}

// humanSize formats a byte count compactly: 512, 1.5K, 20M.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprint(n)
	}
	f := float64(n)
	for _, s := range []string{"K", "M", "G", "T"} {
		f /= unit
		if f < unit || s == "T" {
			if f < 10 {
				return fmt.Sprintf("%.1f%s", f, s)
			}
			return fmt.Sprintf("%.0f%s", f, s)
		}
	}
	return fmt.Sprint(n)
}
