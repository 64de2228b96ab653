package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScanner reads one JSON value from a stream, checking its syntax as
// encoding/json does. Values nobody reads are skipped without being built:
// that is most of a list page, and where encoding/json's Decoder spends its
// time. Only a window of the stream is held at a time.
type jsonScanner struct {
	r   io.Reader
	buf []byte // the window; buf[i:] is not read yet
	i   int
	off int64 // of buf[0] in the stream, for errors
	err error // the reader's, once it gives no more bytes

	// While marked, the bytes read since buf[from] are kept: those a refill
	// moves out of the window go to saved.
	marked bool
	from   int
	saved  []byte

	key   []byte // the last object key read, escapes undone
	keys  map[string]string
	depth int
}

// maxInternedKeys bounds the keys a scanner remembers; a list's objects
// repeat theirs, its labels' values and names do not.
const maxInternedKeys = 4096

// internedKey is s.key as a string, the same string for the same key: a
// page of 500 objects builds its keys once instead of 500 times.
func (s *jsonScanner) internedKey() string {
	if k, ok := s.keys[string(s.key)]; ok {
		return k
	}
	k := string(s.key)
	if s.keys == nil {
		s.keys = make(map[string]string)
	}
	if len(s.keys) < maxInternedKeys {
		s.keys[k] = k
	}
	return k
}

// maxJSONDepth is encoding/json's limit on nesting.
const maxJSONDepth = 10000

func newJSONScanner(r io.Reader) *jsonScanner {
	return &jsonScanner{r: r, buf: make([]byte, 0, 64<<10)}
}

// fill reads more of the stream into the window, keeping what is unread;
// false when the stream has nothing more.
func (s *jsonScanner) fill() bool {
	if s.marked {
		s.saved = append(s.saved, s.buf[s.from:s.i]...)
		s.from = 0
	}
	n := copy(s.buf[:cap(s.buf)], s.buf[s.i:])
	s.off += int64(s.i)
	s.buf, s.i = s.buf[:n], 0
	for tries := 0; s.err == nil; tries++ {
		m, err := s.r.Read(s.buf[n:cap(s.buf)])
		s.buf = s.buf[:n+m]
		switch {
		case err != nil:
			s.err = err
		case m == 0 && tries == 100:
			s.err = io.ErrNoProgress // as bufio gives up on a reader
		}
		if m > 0 {
			return true
		}
	}
	return false
}

// ended is the error for a stream that ended inside a value.
func (s *jsonScanner) ended() error {
	if errors.Is(s.err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return s.err
}

func (s *jsonScanner) syntax(c byte, context string) error {
	return fmt.Errorf("invalid character %q %s at offset %d", c, context, s.off+int64(s.i))
}

// ensure makes n bytes readable in the window.
func (s *jsonScanner) ensure(n int) error {
	for len(s.buf)-s.i < n {
		if !s.fill() {
			return s.ended()
		}
	}
	return nil
}

func (s *jsonScanner) mark() {
	s.marked, s.from, s.saved = true, s.i, s.saved[:0]
}

// kept returns the bytes read since mark, valid until the next read.
func (s *jsonScanner) kept() []byte {
	s.marked = false
	if len(s.saved) == 0 {
		return s.buf[s.from:s.i]
	}
	s.saved = append(s.saved, s.buf[s.from:s.i]...)
	return s.saved
}

// peek skips whitespace and returns the next byte, not reading it.
func (s *jsonScanner) peek() (byte, error) {
	if s.i < len(s.buf) {
		if c := s.buf[s.i]; c > ' ' {
			return c, nil // inlined: API servers write no whitespace
		}
	}
	return s.peekSpace()
}

func (s *jsonScanner) peekSpace() (byte, error) {
	for {
		for s.i < len(s.buf) {
			switch c := s.buf[s.i]; c {
			case ' ', '\t', '\n', '\r':
				s.i++
			default:
				return c, nil
			}
		}
		if !s.fill() {
			return 0, s.ended()
		}
	}
}

// next is the next byte, not read, or false at the end of the stream.
func (s *jsonScanner) next() (byte, bool) {
	if s.i == len(s.buf) && !s.fill() {
		return 0, false
	}
	return s.buf[s.i], true
}

func (s *jsonScanner) enter() error {
	s.depth++
	if s.depth > maxJSONDepth {
		return fmt.Errorf("exceeded max depth at offset %d", s.off+int64(s.i))
	}
	return nil
}

// member reads up to an object's next key and its colon, the key in s.key;
// false at the object's end. first says whether this is the first member.
// Keys are only unescaped when wanted.
func (s *jsonScanner) member(first, want bool) (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	if c == '}' {
		s.i++
		s.depth--
		return false, nil
	}
	if !first {
		if c != ',' {
			return false, s.syntax(c, "after object key:value pair")
		}
		s.i++
		if c, err = s.peek(); err != nil {
			return false, err
		}
	}
	if c != '"' {
		return false, s.syntax(c, "looking for beginning of object key string")
	}
	s.i++
	raw, err := s.str(want)
	if err != nil {
		return false, err
	}
	if want {
		s.key = unquote(s.key[:0], raw) // copied: the window moves on
	}
	if c, err = s.peek(); err != nil {
		return false, err
	}
	if c != ':' {
		return false, s.syntax(c, "after object key")
	}
	s.i++
	return true, nil
}

// element reads up to an array's next value; false at the array's end.
func (s *jsonScanner) element(first bool) (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	switch {
	case c == ']':
		s.i++
		s.depth--
		return false, nil
	case first:
		return true, nil
	case c == ',':
		s.i++
		return true, nil
	}
	return false, s.syntax(c, "after array element")
}

// plain are the bytes a string holds as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainPrefix is how many bytes b starts with that a string holds as they
// are. It looks at eight at a time: strings are most of a page.
func plainPrefix(b []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	j := 0
	for ; len(b)-j >= 8; j += 8 {
		x := binary.LittleEndian.Uint64(b[j:])
		q, bs := x^('"'*ones), x^('\\'*ones)
		// The high bit of a byte is set where it is below 0x20 or a quote
		// or a backslash, and maybe in bytes after such a one.
		found := ((x - 0x20*ones) &^ x) | ((q - ones) &^ q) | ((bs - ones) &^ bs)
		if found &= highs; found != 0 {
			j += bits.TrailingZeros64(found) / 8
			break
		}
	}
	for j < len(b) && plain[b[j]] {
		j++
	}
	return j
}

// str reads a string after its opening quote, through the closing one.
// With keep, it returns what is between the quotes, escapes not undone,
// valid until the next read.
func (s *jsonScanner) str(keep bool) ([]byte, error) {
	if keep {
		s.mark()
	}
	for {
		b := s.buf[s.i:]
		j := plainPrefix(b)
		s.i += j
		if j == len(b) {
			if !s.fill() {
				return nil, s.ended()
			}
			continue
		}
		switch c := b[j]; c {
		case '"':
			var raw []byte
			if keep {
				raw = s.kept()
			}
			s.i++
			return raw, nil
		case '\\':
			if s.i+1 < len(s.buf) && s.buf[s.i+1] == '"' {
				s.i += 2 // the common escape, in last-applied-configuration
				continue
			}
			if err := s.escape(); err != nil {
				return nil, err
			}
		default:
			return nil, s.syntax(c, "in string literal")
		}
	}
}

// escape reads an escape in a string.
func (s *jsonScanner) escape() error {
	if err := s.ensure(2); err != nil {
		return err
	}
	switch c := s.buf[s.i+1]; c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return nil
	case 'u':
		if err := s.ensure(6); err != nil {
			return err
		}
		for j := 2; j < 6; j++ {
			if hexDigit(s.buf[s.i+j]) < 0 {
				s.i += j
				return s.syntax(s.buf[s.i], "in \\u hexadecimal character escape")
			}
		}
		s.i += 6
		return nil
	default:
		s.i++
		return s.syntax(c, "in string escape code")
	}
}

func hexDigit(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// hex4 reads the code of a \u escape at the start of b, -1 if none.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		d := hexDigit(c)
		if d < 0 {
			return -1
		}
		r = r<<4 | d
	}
	return r
}

// unescapes are the bytes of the one-letter escapes.
var unescapes = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// unquote appends raw, a string's checked contents, with its escapes undone
// as encoding/json does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func unquote(dst, raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return append(dst, raw...)
	}
	for r := 0; r < len(raw); {
		switch c := raw[r]; {
		case c == '\\' && raw[r+1] == 'u':
			code := hex4(raw[r:])
			r += 6
			if utf16.IsSurrogate(code) {
				if pair := utf16.DecodeRune(code, hex4(raw[r:])); pair != unicode.ReplacementChar {
					dst = utf8.AppendRune(dst, pair)
					r += 6
					continue
				}
				code = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, code)
		case c == '\\':
			dst = append(dst, unescapes[raw[r+1]])
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			code, size := utf8.DecodeRune(raw[r:])
			dst = utf8.AppendRune(dst, code) // RuneError for invalid bytes
			r += size
		}
	}
	return dst
}

// num reads a number. With keep, it returns its text, valid until the next
// read.
func (s *jsonScanner) num(keep bool) ([]byte, error) {
	if keep {
		s.mark()
	}
	if c, _ := s.next(); c == '-' {
		s.i++
	}
	c, ok := s.next()
	switch {
	case !ok:
		return nil, s.ended()
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return nil, s.syntax(c, "in numeric literal")
	}
	if c, _ := s.next(); c == '.' {
		s.i++
		if err := s.someDigits("after decimal point in numeric literal"); err != nil {
			return nil, err
		}
	}
	if c, _ := s.next(); c == 'e' || c == 'E' {
		s.i++
		if c, _ := s.next(); c == '+' || c == '-' {
			s.i++
		}
		if err := s.someDigits("in exponent of numeric literal"); err != nil {
			return nil, err
		}
	}
	if keep {
		return s.kept(), nil
	}
	return nil, nil
}

func (s *jsonScanner) digits() {
	for c, ok := s.next(); ok && '0' <= c && c <= '9'; c, ok = s.next() {
		s.i++
	}
}

// someDigits reads digits, at least one.
func (s *jsonScanner) someDigits(context string) error {
	c, ok := s.next()
	if !ok {
		return s.ended()
	}
	if c < '0' || c > '9' {
		return s.syntax(c, context)
	}
	s.digits()
	return nil
}

// literal reads true, false or null.
func (s *jsonScanner) literal(word string) error {
	for j := 0; j < len(word); j++ {
		c, ok := s.next()
		if !ok {
			return s.ended()
		}
		if c != word[j] {
			return s.syntax(c, "in literal "+word)
		}
		s.i++
	}
	return nil
}

// skip reads a value and throws it away.
func (s *jsonScanner) skip() error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch c {
	case '{':
		s.i++
		if err := s.enter(); err != nil {
			return err
		}
		for first := true; ; first = false {
			more, err := s.member(first, false)
			if err != nil || !more {
				return err
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case '[':
		s.i++
		if err := s.enter(); err != nil {
			return err
		}
		for first := true; ; first = false {
			more, err := s.element(first)
			if err != nil || !more {
				return err
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case '"':
		s.i++
		_, err := s.str(false)
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	if c == '-' || '0' <= c && c <= '9' {
		_, err := s.num(false)
		return err
	}
	return s.syntax(c, "looking for beginning of value")
}

// capture reads a value and returns its text, valid until the next read.
func (s *jsonScanner) capture() ([]byte, error) {
	if _, err := s.peek(); err != nil {
		return nil, err
	}
	s.mark()
	err := s.skip()
	raw := s.kept()
	return raw, err
}

// value reads a value whole, as encoding/json decodes one into an any,
// but for numbers, which are as number converts them.
func (s *jsonScanner) value() (any, error) {
	c, err := s.peek()
	if err != nil {
		return nil, err
	}
	switch c {
	case '{':
		s.i++
		if err := s.enter(); err != nil {
			return nil, err
		}
		obj := map[string]any{}
		for first := true; ; first = false {
			more, err := s.member(first, true)
			if err != nil || !more {
				return obj, err
			}
			key := s.internedKey()
			if obj[key], err = s.value(); err != nil {
				return nil, err
			}
		}
	case '[':
		s.i++
		if err := s.enter(); err != nil {
			return nil, err
		}
		list := []any{}
		for first := true; ; first = false {
			more, err := s.element(first)
			if err != nil || !more {
				return list, err
			}
			v, err := s.value()
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	case '"':
		s.i++
		raw, err := s.str(true)
		if err != nil {
			return nil, err
		}
		return string(unquote(nil, raw)), nil
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return nil, s.literal("null")
	}
	if c == '-' || '0' <= c && c <= '9' {
		raw, err := s.num(true)
		if err != nil {
			return nil, err
		}
		return number(raw), nil
	}
	return nil, s.syntax(c, "looking for beginning of value")
}

// number converts a number's text as apimachinery's JSON decoding does:
// int64 when it is one, else float64, else (out of range) the text.
func number(text []byte) any {
	if len(text) <= 18 && !bytes.ContainsAny(text, ".eE") {
		// At most 18 digits: an int64, read without strconv's allocations.
		var n int64
		for _, c := range bytes.TrimPrefix(text, []byte("-")) {
			n = n*10 + int64(c-'0')
		}
		if text[0] == '-' {
			n = -n
		}
		return n
	}
	t := string(text)
	if i, err := strconv.ParseInt(t, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return f
	}
	return t
}
