package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// readers are the ways the tests hand a body to the scanner: whole, and a
// byte at a time, so that every token also straddles the window's end.
var readers = map[string]func([]byte) io.Reader{
	"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
	"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
}

// scanValue reads data as one value with the scanner; only whitespace may
// follow it.
func scanValue(r io.Reader) (any, error) {
	s := newJSONScanner(r)
	v, err := s.value()
	if err != nil {
		return nil, err
	}
	if c, err := s.peek(); err == nil {
		return nil, s.syntax(c, "after top-level value")
	} else if !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return v, nil
}

// stdValue is data decoded by encoding/json, numbers converted as the
// scanner converts them.
func stdValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, errors.New("not one value")
	}
	return stdNumbers(v), nil
}

func TestScanValue(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     any
	}{
		{"escapes", `"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t"},
		{"unicode escapes", `"\u00e9\u20AC"`, "é€"},
		{"surrogate pair", `"\ud83d\ude00"`, "😀"},
		{"lone high surrogate", `"\ud83d"`, "\uFFFD"},
		{"high surrogate then a letter", `"\ud83dx"`, "\uFFFDx"},
		{"high surrogate then an escape", `"\ud83d\u0041"`, "\uFFFDA"},
		{"low surrogate first", `"\ude00\ud83d\ude00"`, "\uFFFD😀"},
		{"two high surrogates", `"\ud83d\ud83d\ude00"`, "\uFFFD😀"},
		{"invalid UTF-8", "\"a\xff\xfeb\"", "a\uFFFD\uFFFDb"},
		{"UTF-8 surrogate", "\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD"},
		{"UTF-8", `"héllo wörld 😀"`, "héllo wörld 😀"},
		{"escaped keys", `{"n\u0061me":"x","\ud83d\ude00":1,"a\"b":2}`, map[string]any{"name": "x", "😀": int64(1), `a"b`: int64(2)}},
		{"duplicate keys", `{"a":1,"a":{"b":2}}`, map[string]any{"a": map[string]any{"b": int64(2)}}},
		{"nested", `[[[]],{"a":[{}]},[]]`, []any{[]any{[]any{}}, map[string]any{"a": []any{map[string]any{}}}, []any{}}},
		{"whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] ,\n\"b\":\"\" } \n", map[string]any{"a": []any{int64(1), int64(2)}, "b": ""}},
		{"zero", `0`, int64(0)},
		{"negative zero", `-0`, int64(0)},
		{"negative", `-12`, int64(-12)},
		{"fraction", `1.5`, 1.5},
		{"integral fraction", `1.0`, 1.0},
		{"exponent", `1e2`, 100.0},
		{"signed exponent", `-1.5E-3`, -0.0015},
		{"plus exponent", `2E+2`, 200.0},
		{"18 digits", `123456789012345678`, int64(123456789012345678)},
		{"19 digits", `-1234567890123456789`, int64(-1234567890123456789)},
		{"max int64", `9223372036854775807`, int64(9223372036854775807)},
		{"min int64", `-9223372036854775808`, int64(-9223372036854775808)},
		{"past int64", `9223372036854775808`, 9223372036854775808.0},
		{"big int", `123456789012345678901234567890`, 123456789012345678901234567890.0},
		{"out of range", `1e400`, "1e400"},
		{"null", `null`, nil},
		{"true", `true`, true},
		{"false", `false`, false},
		{"empty object", `{}`, map[string]any{}},
		{"empty array", `[]`, []any{}},
		{"empty string", `""`, ""},
		{"deep", strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := stdValue([]byte(tc.in))
			if err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			if tc.want != nil && !reflect.DeepEqual(want, tc.want) {
				t.Fatalf("encoding/json decodes %#v, the test wants %#v", want, tc.want)
			}
			for name, r := range readers {
				got, err := scanValue(r([]byte(tc.in)))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %#v, want %#v", name, got, want)
				}
			}
		})
	}
}

func TestScanValueInvalid(t *testing.T) {
	for _, in := range []string{
		``, ` `, `{`, `[`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `[1`, `[1,`,
		`[1,]`, `{"a":1,}`, `{,}`, `[,1]`, `{"a" 1}`, `{"a",1}`, `{1:2}`, `{a:1}`, `[1 2]`, `{"a":1 "b":2}`,
		`{"a":1]`, `[1}`, `]`, `}`, `:`, `,`,
		`01`, `-`, `-a`, `1.`, `1.e2`, `1e`, `1e+`, `.5`, `+1`, `1x`, `0x10`, `NaN`, `Infinity`,
		`tru`, `nul`, `fals`, `truex`, `nulL`, `True`,
		"\"\x01\"", "\"a\nb\"", `"\q"`, `"\u12g4"`, `"\u12"`, `"\u`, `"\`, `"abc`, `'a'`,
		`{"a":1}}`, `1 2`, `{"\q":1}`,
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
		strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
	} {
		if json.Valid([]byte(in)) {
			t.Fatalf("%q: valid JSON", in)
		}
		for name, r := range readers {
			if v, err := scanValue(r([]byte(in))); err == nil {
				t.Errorf("%q, %s: %#v, no error", in, name, v)
			}
		}
	}
}

// testKeep prunes to fields with names short enough for the fuzzer to find,
// and to those of the audit.
var testKeep = keep{
	"a": nil,
	"b": keep{"c": nil, "d": keep{"e": nil}},
	"metadata": keep{"name": nil, "namespace": nil, "labels": nil, "ownerReferences": nil,
		"annotations": keep{helmReleaseAnnotation: nil, argoTrackingAnnotation: nil}},
	"spec": keep{"selector": nil, "template": keep{"metadata": keep{"labels": nil}}},
}

type listResult struct {
	items []map[string]any
	meta  listMeta
	err   error
}

func decodeWith(decode func(io.Reader, keep, func(*unstructured.Unstructured) error) (listMeta, error), r io.Reader) listResult {
	var res listResult
	res.meta, res.err = decode(r, testKeep, func(obj *unstructured.Unstructured) error {
		res.items = append(res.items, obj.Object)
		return nil
	})
	return res
}

// agreeWithStd fails unless decodeList decodes data as stdDecodeList does,
// or fails where it fails.
func agreeWithStd(t *testing.T, data []byte) listResult {
	t.Helper()
	want := decodeWith(stdDecodeList, bytes.NewReader(data))
	for name, r := range readers {
		got := decodeWith(decodeList, r(data))
		if (got.err == nil) != (want.err == nil) {
			t.Fatalf("%s: %q: error %v, encoding/json's %v", name, data, got.err, want.err)
		}
		if got.err == nil && (!reflect.DeepEqual(got.meta, want.meta) || !reflect.DeepEqual(got.items, want.items)) {
			t.Fatalf("%s: %q:\ngot  %#v, metadata %+v\nwant %#v, metadata %+v", name, data, got.items, got.meta, want.items, want.meta)
		}
	}
	return want
}

// fixturePage is the objects of testdata/objects as one list page.
func fixturePage(tb testing.TB) []byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("..", "testdata", "objects", "*.yaml"))
	if err != nil || len(names) == 0 {
		tb.Fatal("no fixtures", err)
	}
	var items []any
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		items = append(items, obj)
	}
	page, err := json.Marshal(map[string]any{"kind": "List", "apiVersion": "v1", "items": items, "metadata": map[string]any{"continue": "c"}})
	if err != nil {
		tb.Fatal(err)
	}
	return page
}

// listBodies are list responses, good and bad, that the two decoders must
// agree on.
var listBodies = []string{
	`{"items":null,"metadata":{"continue":"c"}}`,
	`{"kind":"List","metadata":{}}`,
	`{}`,
	` { "items" : [ { "a" : 1 } ] } `,
	`{"items":[{"metadata":{"name":"a","uid":"u","Name":"b"},"b":{"c":[1,2.5,{"m":3}],"big":{"a":[1,2,3]},"d":{"e":1,"f":2}},"status":{}}]}`,
	`{"items":[{"b":{"d":[7,"s",null]}},{"b":"x"}]}`,
	`{"items":[{"b":{"c":1},"b":{"d":{"e":2}}}]}`,
	`{"items":[{"a":{"deep":[[[{"x":[]}]]]},"z":{"deep":[[[{"x":[]}]]]}}]}`,
	`{"it\u0065ms":[{"\u0061":"\ud83d\ude00","b":{"\u0063":"\ud83d"}}],"m\u0065tadata":{"continue":"e"}}`,
	`{"items":[{"a":-0,"b":{"c":[1e400,-1.5e-3,9223372036854775808,-9223372036854775808]}}]}`,
	"{\"items\":[{\"a\":\"\xff\",\"metadata\":{\"name\":\"\xed\xa0\x80\"}}]}",
	`{"items":[{}],"items":[{"a":1}]}`,
	`{"items":[]} trailing`,
	`{"items":[]}]`,
	`{"metadata":{"Continue":"c"}}`,
	`{"metadata":{"CONTINUE":"c","resourceVersion":"1"}}`,
	`{"metadata":{"continue":"c"},"metadata":{"resourceVersion":"2"}}`,
	`{"metadata":{"continue":"c"},"metadata":{"continue":null}}`,
	`{"metadata":null}`,
	`{"metadata":"x"}`,
	`{"metadata":{"continue":1}}`,
	`{"metadata":[]}`,
	`{"items":[1]}`,
	`{"items":[null]}`,
	`{"items":[[]]}`,
	`{"items":{}}`,
	`{"items":5}`,
	`{"items":"x"}`,
	`{"items":nul}`,
	`{"items":true}`,
	`{"items":[{"a":1},]}`,
	`{"items":[{"a":1}`,
	`{"items":[{"metadata":{"name":"a"}`,
	`{"items":[{"z":{"x":01}}]}`,
	`{"items":[{"a":{"x":01}}]}`,
	`{"items":[{"z":"\q"}]}`,
	`{"z":[}`,
	`{"items":[],}`,
	`[]`,
	`null`,
	``,
	`"items"`,
}

func TestDecodeListAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range listBodies {
		agreeWithStd(t, []byte(body))
	}
	t.Run("fixtures", func(t *testing.T) {
		if res := agreeWithStd(t, fixturePage(t)); res.err != nil || len(res.items) == 0 {
			t.Fatalf("%d items, error %v", len(res.items), res.err)
		}
	})
	t.Run("benchmark page", func(t *testing.T) {
		if res := agreeWithStd(t, benchPage(t, 3)); res.err != nil || len(res.items) != 3 {
			t.Fatalf("%d items, error %v", len(res.items), res.err)
		}
	})
}

func TestDecodeListTruncated(t *testing.T) {
	page := fixturePage(t)
	for n := range len(page) {
		for name, r := range readers {
			if got := decodeWith(decodeList, r(page[:n])); got.err == nil {
				t.Fatalf("%s: %d of %d bytes: no error", name, n, len(page))
			}
		}
	}
}

func TestDecodeListReadError(t *testing.T) {
	boom := errors.New("connection reset")
	page := fixturePage(t)
	for _, n := range []int{0, 1, len(page) / 2, len(page) - 1} {
		for name, decode := range map[string]func(io.Reader, keep, func(*unstructured.Unstructured) error) (listMeta, error){"scanner": decodeList, "encoding/json": stdDecodeList} {
			got := decodeWith(decode, io.MultiReader(bytes.NewReader(page[:n]), iotest.ErrReader(boom)))
			if !errors.Is(got.err, boom) {
				t.Errorf("%s, error after %d bytes: %v, want %v", name, n, got.err, boom)
			}
		}
	}
}

func FuzzDecodeList(f *testing.F) {
	for _, body := range listBodies {
		f.Add([]byte(body))
	}
	f.Add(fixturePage(f))
	f.Add(benchPage(f, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		agreeWithStd(t, data)
	})
}

func FuzzScanValue(f *testing.F) {
	for _, body := range listBodies {
		f.Add([]byte(body))
	}
	f.Add(fixturePage(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := stdValue(data)
		for name, r := range readers {
			got, err := scanValue(r(data))
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("%s: %q: error %v, encoding/json's %v", name, data, err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: %q: got %#v, want %#v", name, data, got, want)
			}
		}
	})
}
