package worktree

import (
	"fmt"
	"strings"
	"unicode"
)

// ValidateBranchName checks name the way `git check-ref-format --branch`
// does, without running git, and also rejects a leading '-' (which git
// would read as an option) and "@" (which revisions read as HEAD).
func ValidateBranchName(name string) error {
	if reason := badBranchName(name); reason != "" {
		return fmt.Errorf("invalid branch name %q: %s", name, reason)
	}
	return nil
}

func badBranchName(name string) string {
	switch {
	case name == "":
		return "empty"
	case strings.HasPrefix(name, "-"):
		return "starts with '-'"
	case name == "@":
		return `is "@"`
	case name == "HEAD":
		return `is "HEAD"`
	case strings.Contains(name, ".."):
		return `contains ".."`
	case strings.Contains(name, "@{"):
		return `contains "@{"`
	case strings.HasPrefix(name, "/"), strings.HasSuffix(name, "/"):
		return "starts or ends with '/'"
	case strings.Contains(name, "//"):
		return `contains "//"`
	case strings.HasSuffix(name, "."):
		return "ends with '.'"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x20 || c == 0x7f {
			return "contains a control character"
		}
		switch c {
		case ' ':
			return "contains a space"
		case '~', '^', ':', '?', '*', '[', '\\':
			return fmt.Sprintf("contains %q", c)
		}
	}
	for _, comp := range strings.Split(name, "/") {
		if strings.HasPrefix(comp, ".") {
			return "a component starts with '.'"
		}
		if strings.HasSuffix(comp, ".lock") {
			return `a component ends with ".lock"`
		}
	}
	return ""
}

const slugFallback = "agent"

// foldLatin maps common accented Latin letters to ASCII.
var foldLatin = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a", 'æ': "ae",
	'ç': "c", 'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ì': "i", 'í': "i",
	'î': "i", 'ï': "i", 'ñ': "n", 'ò': "o", 'ó': "o", 'ô': "o", 'õ': "o",
	'ö': "o", 'ø': "o", 'œ': "oe", 'ß': "ss", 'ù': "u", 'ú': "u", 'û': "u",
	'ü': "u", 'ý': "y", 'ÿ': "y",
}

// Slugify turns s into a lower-case ASCII slug of [a-z0-9] words joined by
// '-', at most max bytes long (max <= 0: no limit). It cuts at a word
// boundary unless that would keep less than half of max. The result is
// never empty (fallback "agent") and never starts or ends with '-'.
func Slugify(s string, max int) string {
	words := slugWords(s)
	if len(words) == 0 {
		return cut(slugFallback, max)
	}
	full := strings.Join(words, "-")
	if max <= 0 || len(full) <= max {
		return full
	}
	var b strings.Builder
	for _, w := range words {
		need := len(w)
		if b.Len() > 0 {
			need++
		}
		if b.Len()+need > max {
			break
		}
		if b.Len() > 0 {
			b.WriteByte('-')
		}
		b.WriteString(w)
	}
	if b.Len() > 0 && b.Len()*2 >= max {
		return b.String()
	}
	return strings.Trim(full[:max], "-")
}

func slugWords(s string) []string {
	var words []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			words = append(words, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		r = unicode.ToLower(r)
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			cur.WriteRune(r)
		case r == '\'' || r == '’':
			// "don't" -> "dont"
		default:
			if f, ok := foldLatin[r]; ok {
				cur.WriteString(f)
			} else {
				flush()
			}
		}
	}
	flush()
	return words
}

func cut(s string, max int) string {
	if max > 0 && len(s) > max {
		return s[:max]
	}
	return s
}
